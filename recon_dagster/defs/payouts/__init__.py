"""Payout reconciliation as Dagster objects: assets, check, job and schedule (the second domain
beside charges/)."""
