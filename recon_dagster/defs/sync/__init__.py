"""Repair as Dagster objects: the `sync_missing_payments` job and the sensor that refreshes the
days it repaired."""
