"""Tests of recon_dagster/settings."""
