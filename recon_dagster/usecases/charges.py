"""Reconcile a window of charges (a day, or a range), the same way for the Dagster asset and the
service: read Stripe's side and the payments table (unless already read), look up counterparts
across midnight, reconcile in the core, optionally repair and reconcile again, and say where
Stripe's side came from and how far it can be trusted."""

from collections.abc import Callable
from datetime import date, timedelta

import polars as pl

from recon_dagster.core.reconcile import reconcile
from recon_dagster.core.result import ReconcileParams, ReconciliationResult
from recon_dagster.days import day_window
from recon_dagster.sources.payments_db import PaymentsReader
from recon_dagster.sources.stripe_source import ChargeSource
from recon_dagster.usecases.neighbours import lookup_across_midnight

# Inserts the missing payments of these charge ids into the payments table; how many it inserted.
Repair = Callable[[list[str]], int]


def reconcile_charges(
    params: ReconcileParams,
    *,
    stripe: ChargeSource,
    payments: PaymentsReader,
    margin: timedelta,
    charges: pl.DataFrame | None = None,
    rows: pl.DataFrame | None = None,
    repair: Repair | None = None,
) -> ReconciliationResult:
    """The days `params.start`..`params.end` in `params.timezone`. `charges` and `rows`: the
    window's Stripe charges and payments rows when already read (the upstream assets); `repair`:
    sync the missing payments, then reconcile against the repaired table (RECON_AUTO_SYNC).

    Raises the sources' errors (`StripeUnavailableError`, `StripeDataError`,
    `PaymentsDataError`, `ConfigError`) for the caller to record."""
    start, end = day_window(params.start, params.end, params.timezone)
    lookup = lookup_across_midnight(start, end, margin, stripe=stripe, payments=payments)
    if charges is None:
        charges = stripe.fetch_charges(start, end)
    if rows is None:
        rows = payments.read_window(start, end)
    result = reconcile(charges, rows, params, find_neighbours=lookup)
    if repair is not None and result.missing_in_database and repair(result.missing_in_database):
        result = reconcile(
            charges, payments.read_window(start, end), params, find_neighbours=lookup
        )
    verdict = stripe.verdict(charges, end, _seed(params.start, params.end))
    return result.with_changes(
        stripe_source=verdict.label,
        source_note=verdict.note,
        source_mismatches=verdict.mismatches,
    )


def _seed(first: date, last: date) -> str:
    """The window's name: a day's spot check draws the same sample however it is reconciled."""
    return first.isoformat() if first == last else f"{first.isoformat()}:{last.isoformat()}"
