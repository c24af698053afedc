"""Acceptance tests: the product driven end to end through its CLI, API and Dagster."""
