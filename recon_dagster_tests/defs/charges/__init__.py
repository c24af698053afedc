"""Tests of recon_dagster/defs/charges."""
