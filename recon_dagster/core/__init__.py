"""The reconciliation core: pure Polars and dataclasses, no Dagster, no I/O."""
