"""Tests of recon_dagster/stores."""
