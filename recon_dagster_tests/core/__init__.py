"""Tests of recon_dagster/core."""
