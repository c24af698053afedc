"""Every Dagster object, one folder per domain (dagster's `defs/` layout): `charges/` and
`payouts/` (assets, checks, jobs, schedules), `late_changes/`, `alerts/` and `sync/`, over the
resources and what the domains share. `recon_dagster/definitions.py` assembles them.

The pure parts stay outside: `core/` (Polars), `sources/`, `stores/`, `usecases/`.
"""
