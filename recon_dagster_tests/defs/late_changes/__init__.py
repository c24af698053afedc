"""Tests of recon_dagster/defs/late_changes."""
