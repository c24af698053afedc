"""Tests of recon_dagster/testing."""
