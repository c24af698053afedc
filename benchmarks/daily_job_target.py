"""The daily job as a reconstructable target: what `daily_job_child.py --executor multiprocess`
runs, each step in its own process, as the daemon's and the UI's runs do."""

from __future__ import annotations

import dagster as dg

from recon_dagster.definitions import build_defs
from recon_dagster.settings import Settings


def daily_job() -> dg.JobDefinition:
    return build_defs(Settings.from_env()).resolve_job_def("daily_reconciliation")
