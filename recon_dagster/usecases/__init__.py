"""The use cases: one function per domain that both the Dagster assets and the service call."""
