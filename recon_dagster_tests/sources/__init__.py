"""Tests of recon_dagster/sources."""
