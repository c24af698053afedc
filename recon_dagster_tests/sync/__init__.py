"""Tests of recon_dagster/sync."""
