"""The daily charges reconciliation as Dagster objects: assets, check, job and schedule."""
