"""The daily assets: `stripe_charges` and `db_payments` feed `reconciliation_report`.

A run may cover one day or a range of days (a backfill chunk); each day is still reconciled,
stored and described on its own. A failure records an `error` report for the run's days and
fails the run with the reason.
"""

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import NoReturn

import dagster as dg
import polars as pl

from recon_dagster.charges.neighbours import lookup_across_midnight
from recon_dagster.charges.report_metadata import report_metadata
from recon_dagster.core.reconcile import reconcile
from recon_dagster.core.result import ReconcileParams
from recon_dagster.partitions import day_window
from recon_dagster.resources import (
    PaymentsDatabaseResource,
    ReconciliationPolicy,
    ReportStoreResource,
    StripeMirrorResource,
    StripeResource,
)
from recon_dagster.settings import ConfigError
from recon_dagster.sources.payments_db import PaymentsDataError
from recon_dagster.sources.stripe_api import StripeDataError, StripeUnavailableError
from recon_dagster.stores.io_managers import partition_expr
from recon_dagster.stores.report_versions import trigger_of_run
from recon_dagster.sync.repair import sync_payments

GROUP = "reconciliation"
# Errors that are about the outside world or its data, reported as they are; anything else is a
# bug and keeps its traceback.
EXPECTED_ERRORS = (StripeUnavailableError, StripeDataError, PaymentsDataError, ConfigError)


def run_window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime]:
    window = context.partition_time_window
    return window.start.astimezone(UTC), window.end.astimezone(UTC)


def run_days(context: dg.AssetExecutionContext) -> list[date]:
    return [date.fromisoformat(key) for key in context.partition_keys]


def fail_days(
    context,
    store: ReportStoreResource,
    policy: ReconciliationPolicy,
    what: str,
    exc: Exception,
    days: list[date] | None = None,
) -> NoReturn:
    """Record an `error` report for the run's days (or `days`), then fail the run saying why."""
    days = days or run_days(context)
    span = (
        days[0].isoformat()
        if len(days) == 1
        else f"{days[0].isoformat()} to {days[-1].isoformat()}"
    )
    message = f"{what} for {span}: {exc}"
    reports = store.store()
    for day in days:
        reports.save_error(
            day,
            day,
            policy.timezone,
            message,
            tolerance=float(policy.tolerance),
            include_refunds=policy.include_refunds,
            source="dagster",
            run_id=context.run_id,
            trigger=trigger_of_run(context.run.tags),
        )
    raise dg.Failure(
        description=message, metadata={"days": [d.isoformat() for d in days]}, allow_retries=False
    )


def _per_day_rows(context, frame: pl.DataFrame, column: str, tz: str) -> None:
    for key in context.partition_keys:
        day = date.fromisoformat(key)
        start, end = day_window(day, day, tz)
        context.add_asset_metadata(
            {"row_count": _within(frame, column, start, end).height}, partition_key=key
        )


def read_source(
    context, read, column: str, what: str, report_store, policy, timezone_name: str
) -> pl.DataFrame:
    """A source asset's body: read the run's window, or record the days as failed and stop."""
    start, end = run_window(context)
    try:
        frame = read(start, end)
    except EXPECTED_ERRORS as exc:
        fail_days(context, report_store, policy, what, exc)
    _per_day_rows(context, frame, column, timezone_name)
    context.add_output_metadata(
        {"window_start_utc": start.isoformat(), "window_end_utc": end.isoformat()}
    )
    return frame


def build_assets(
    partitions_def: dg.PartitionsDefinition, timezone_name: str, backfill_policy: dg.BackfillPolicy
) -> list[dg.AssetsDefinition]:
    """The three assets over `partitions_def` (days in `timezone_name`)."""
    common = dict(partitions_def=partitions_def, backfill_policy=backfill_policy, group_name=GROUP)

    @dg.asset(
        **common,
        kinds={"stripe", "polars"},
        metadata={"partition_expr": partition_expr("created", timezone_name)},
        description="Charges created in each day's window, from the Stripe API (newest first, 100 "
        "per page) "
        "or from a Stripe mirror in PostgreSQL (RECON_STRIPE_SOURCE).",
    )
    def stripe_charges(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
    ) -> pl.DataFrame:
        if not stripe_mirror.enabled:
            return read_source(
                context,
                stripe.fetch_charges,
                "created",
                "Could not read Stripe charges",
                report_store,
                policy,
                timezone_name,
            )
        frame = read_source(
            context,
            stripe_mirror.fetch_charges,
            "created",
            "Could not read Stripe charges from the mirror",
            report_store,
            policy,
            timezone_name,
        )
        status = stripe_mirror.status()  # how current the mirror was when the days were read
        context.add_output_metadata(
            {
                "stripe_source": f"mirror:{stripe_mirror.mirror().layout}",
                "mirror_synced_at": status.synced_at.isoformat() if status.synced_at else "never",
                "mirror_newest_created": status.newest_created.isoformat()
                if status.newest_created
                else "none",
            }
        )
        return frame

    @dg.asset(
        **common,
        kinds={"sql", "polars"},
        metadata={"partition_expr": partition_expr("created_at", timezone_name)},
        description="The application's payments in each day's window, amounts in integer minor "
        "units.",
    )
    def db_payments(
        context: dg.AssetExecutionContext,
        payments_db: PaymentsDatabaseResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
    ) -> pl.DataFrame:
        return read_source(
            context,
            payments_db.read_window,
            "created_at",
            "Could not read the payments table",
            report_store,
            policy,
            timezone_name,
        )

    @dg.asset(
        **common,
        kinds={"polars"},
        description="Each day's reconciliation: totals per currency, every discrepancy class, "
        "recommendations.",
    )
    def reconciliation_report(
        context: dg.AssetExecutionContext,
        stripe_charges: pl.DataFrame,
        db_payments: pl.DataFrame,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        payments_db: PaymentsDatabaseResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
    ) -> dg.MaterializeResult:
        store = report_store.store()
        paid = tuple(payments_db.paid_statuses)
        tracked = bool(payments_db.refunded_column)
        days = run_days(context)
        for i, day in enumerate(days):
            key = day.isoformat()
            start, end = day_window(day, day, timezone_name)
            params = ReconcileParams(
                start=day,
                end=day,
                timezone=timezone_name,
                tolerance_percentage=float(policy.tolerance),
                include_refunds=policy.include_refunds,
                paid_statuses=paid,
                refunds_tracked=tracked,
                match_on=policy.match_on,
            )
            source = (
                stripe_mirror if stripe_mirror.enabled else stripe
            )  # where neighbours are looked up too
            lookup = lookup_across_midnight(
                start,
                end,
                policy.margin,
                retrieve_charges=source.retrieve_charges,
                charges_of_intents=source.fetch_intents,
                find_payments=payments_db.find_ids,
                fetch_charges=source.fetch_charges
                if stripe_mirror.enabled
                else stripe.list_charges,
            )
            try:
                charges = _within(stripe_charges, "created", start, end)
                result = reconcile(
                    charges,
                    _within(db_payments, "created_at", start, end),
                    params,
                    find_neighbours=lookup,
                )
                if policy.auto_sync and result.missing_in_database:
                    synced = sync_payments(
                        result.missing_in_database,
                        client=stripe.client(),
                        table=payments_db.mapping(),
                        store=store,
                        run_id=context.run_id,
                        day=day,
                        match_on=policy.match_on,
                        window=(start, end),
                    )
                    context.log.info(
                        f"Auto-sync for {key}: {synced.synced} synced, {len(synced.failed)} failed"
                    )
                    if (
                        synced.synced
                    ):  # reconcile again against the repaired table: the report shows what is left
                        result = reconcile(
                            charges,
                            payments_db.read_window(start, end),
                            params,
                            find_neighbours=lookup,
                        )
                if stripe_mirror.enabled:
                    label, note, mismatches = stripe_mirror.verdict(
                        charges, end, key, stripe.retrieve_charges
                    )
                    result = replace(
                        result, stripe_source=label, source_note=note, source_mismatches=mismatches
                    )
            except EXPECTED_ERRORS as exc:
                fail_days(context, report_store, policy, "Could not reconcile", exc, days[i:])
            report_id = store.save(
                result,
                source="dagster",
                run_id=context.run_id,
                trigger=trigger_of_run(context.run.tags),
            )  # a new version: earlier ones stay
            context.add_asset_metadata(report_metadata(result, report_id), partition_key=key)
            context.log.info(
                f"Reconciliation completed for {key}: {result.status}, discrepancy "
                f"{result.discrepancy_percentage:.4f}% (gross "
                f"{result.gross_discrepancy_percentage:.4f}%)"
            )
        return dg.MaterializeResult()

    return [stripe_charges, db_payments, reconciliation_report]


def _within(frame: pl.DataFrame, column: str, start: datetime, end: datetime) -> pl.DataFrame:
    return frame.filter((pl.col(column) >= start) & (pl.col(column) < end))
