"""Tests of recon_dagster/defs."""
