"""Tests of recon_dagster/defs/alerts."""
