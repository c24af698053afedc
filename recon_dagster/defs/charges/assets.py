"""The daily assets: `stripe_charges` and `db_payments` feed `reconciliation_report`.

A run may cover one day or a range of days (a backfill chunk), of one account or several (with
many accounts, each a `RunPart`); each day is still reconciled, stored and described on its own.
The two input assets keep their rows in the asset tables (`stores.asset_tables`), which the
report reads back by day. A failure records an `error` report for the days the run has not done
and fails the run with the reason.
"""

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, NoReturn

import dagster as dg
import polars as pl

from recon_dagster.core.frames import NOT_RECONCILED
from recon_dagster.core.result import ReconcileParams
from recon_dagster.days import day_window
from recon_dagster.defs.charges.metadata import report_metadata
from recon_dagster.defs.resources import (
    AssetTablesResource,
    PaymentsDatabaseResource,
    ReconciliationPolicy,
    ReportStoreResource,
    StripeMirrorResource,
    StripeResource,
)
from recon_dagster.defs.shared import (
    CHARGES_GROUP,
    DB_PAYMENTS,
    EXPECTED_ERRORS,
    STRIPE_CHARGES,
    RunPart,
    account_suffix,
    account_table,
    daily_asset,
    run_failure,
    run_parts,
)
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT
from recon_dagster.sources.stripe_mirror_source import MirrorCharges
from recon_dagster.stores.asset_slice import Slice
from recon_dagster.stores.report_versions import trigger_of_run
from recon_dagster.sync.repair import sync_payments
from recon_dagster.usecases.charges import reconcile_charges


def fail_days(
    context: dg.AssetExecutionContext,
    report_store: ReportStoreResource,
    policy: ReconciliationPolicy,
    what: str,
    exc: Exception,
    parts: list[RunPart],
) -> NoReturn:
    """Record an `error` report for the days of `parts` (what the run has not done), then fail
    the run saying why."""
    failure = run_failure(what, exc, parts[0].days, parts[0].account)
    for part in parts:
        store = report_store.store(part.account)
        for day in part.days:
            store.save_error(
                day,
                day,
                policy.timezone,
                failure.description or "",
                tolerance=float(policy.tolerance),
                include_refunds=policy.include_refunds,
                source="dagster",
                run_id=context.run_id,
                trigger=trigger_of_run(context.run.tags),
            )
    raise failure


def store_source_rows(
    context: dg.AssetExecutionContext,
    part: RunPart,
    read: Callable[[datetime, datetime], pl.DataFrame],
    column: str,
    tables: AssetTablesResource,
    fail: Callable[[Exception], NoReturn],
    timezone: str,
) -> dict[str, Any]:
    """A source asset's body for one account's days: read their window, keep its rows in the
    asset tables, and say how many each day (in `timezone`) has; or record the days as failed and
    stop. Returns the part's metadata."""
    start, end = part.window(timezone)
    try:
        frame = read(start, end)
        table = account_table(context.asset_key, part.account)
        tables.tables().write(table, frame, Slice(column, start, end))
    except EXPECTED_ERRORS as exc:
        fail(exc)
    for day, key in sorted(part.keys.items()):
        low, high = day_window(day, day, timezone)
        count = frame.filter(pl.col(column).is_between(low, high, closed="left")).height
        context.add_asset_metadata({"row_count": count}, partition_key=key)
    columns = [dg.TableColumn(name=n, type=str(t)) for n, t in frame.schema.items()]
    return {
        "window_start_utc": start.isoformat(),
        "window_end_utc": end.isoformat(),
        "dataframe_columns": dg.MetadataValue.table_schema(dg.TableSchema(columns=columns)),
    }


def only(account: str) -> str | None:
    """The account whose rows to read: None (every row) for the one `default` account."""
    return None if account == DEFAULT_ACCOUNT else account


def build_charges_assets(
    partitions: dg.PartitionsDefinition, timezone: str
) -> list[dg.AssetsDefinition]:
    """The three assets over `partitions` (days in `timezone`, or days × accounts)."""

    @daily_asset(
        partitions,
        CHARGES_GROUP,
        key=STRIPE_CHARGES,
        kinds={"stripe", "polars"},
        description="Charges created in each day's window, from the Stripe API (newest first, "
        "100 per page) or from a Stripe mirror in PostgreSQL (RECON_STRIPE_SOURCE).",
    )
    def stripe_charges(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        asset_tables: AssetTablesResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
    ) -> dg.MaterializeResult:
        what = "Could not read Stripe charges" + (
            " from the mirror" if stripe_mirror.enabled else ""
        )
        parts, metadata = run_parts(context), {}
        for i, part in enumerate(parts):

            def fail(exc: Exception, left: list[RunPart] = parts[i:]) -> NoReturn:
                fail_days(context, report_store, policy, what, exc, left)

            try:
                source, _ = stripe_mirror.sources(stripe, part.account)
            except EXPECTED_ERRORS as exc:
                fail(exc)
            metadata = store_source_rows(
                context, part, source.fetch_charges, "created", asset_tables, fail, timezone
            )
            if isinstance(source, MirrorCharges):  # how current the mirror was when read
                status = source.status()
                newest = status.newest_created
                synced = status.synced_at.isoformat() if status.synced_at else "never"
                metadata |= {
                    "stripe_source": source.label,
                    "mirror_synced_at": synced,
                    "mirror_newest_created": newest.isoformat() if newest else "none",
                }
        return dg.MaterializeResult(metadata=metadata)

    @daily_asset(
        partitions,
        CHARGES_GROUP,
        key=DB_PAYMENTS,
        kinds={"sql", "polars"},
        description="The application's payments in each day's window, amounts in integer minor "
        "units.",
    )
    def db_payments(
        context: dg.AssetExecutionContext,
        payments_db: PaymentsDatabaseResource,
        asset_tables: AssetTablesResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
    ) -> dg.MaterializeResult:
        parts, metadata = run_parts(context), {}
        for i, part in enumerate(parts):

            def fail(exc: Exception, left: list[RunPart] = parts[i:]) -> NoReturn:
                what = "Could not read the payments table"
                fail_days(context, report_store, policy, what, exc, left)

            reader = payments_db.reader(only(part.account))
            metadata = store_source_rows(
                context, part, reader.read_window, "created_at", asset_tables, fail, timezone
            )
        return dg.MaterializeResult(metadata=metadata)

    @daily_asset(
        partitions,
        CHARGES_GROUP,
        deps=[stripe_charges, db_payments],
        kinds={"polars"},
        description="Each day's reconciliation: totals per currency, every discrepancy class, "
        "recommendations.",
    )
    def reconciliation_report(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        payments_db: PaymentsDatabaseResource,
        asset_tables: AssetTablesResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
    ) -> dg.MaterializeResult:
        parts = run_parts(context)
        for i, part in enumerate(parts):
            resources = (stripe, stripe_mirror, payments_db, asset_tables, report_store, policy)
            reconcile_part(context, part, parts[i + 1 :], *resources, timezone)
        return dg.MaterializeResult()

    return [stripe_charges, db_payments, reconciliation_report]


def reconcile_part(
    context: dg.AssetExecutionContext,
    part: RunPart,
    later: list[RunPart],
    stripe: StripeResource,
    stripe_mirror: StripeMirrorResource,
    payments_db: PaymentsDatabaseResource,
    asset_tables: AssetTablesResource,
    report_store: ReportStoreResource,
    policy: ReconciliationPolicy,
    timezone: str,
) -> None:
    """One account's days of `reconciliation_report`: each day reconciled, stored and described
    on its own; a failure records `error` for its days left and those of the `later` parts."""
    account, days = part.account, part.days
    store = report_store.store(account)

    def fail(exc: Exception, i: int = 0) -> NoReturn:
        left = [RunPart(account, {d: part.keys[d] for d in days[i:]}), *later]
        fail_days(context, report_store, policy, "Could not reconcile", exc, left)

    try:
        source, _ = stripe_mirror.sources(stripe, account)
        payments = payments_db.reader(only(account))
        start, end = part.window(timezone)
        tables = asset_tables.tables()
        charges_table = account_table(STRIPE_CHARGES, account)
        rows_table = account_table(DB_PAYMENTS, account)
        # Columns the core never reads (a charge's customer) stay in the table, not in memory:
        # 16 bytes a charge; a 1M-charge day's report step peaked at 804 MiB with it, 774 without.
        all_charges = tables.read(charges_table, Slice("created", start, end), skip=NOT_RECONCILED)
        all_rows = tables.read(rows_table, Slice("created_at", start, end))
    except EXPECTED_ERRORS as exc:
        fail(exc)
    trigger = trigger_of_run(context.run.tags)
    for i, day in enumerate(days):
        low, high = day_window(day, day, timezone)
        params = ReconcileParams(
            start=day,
            end=day,
            timezone=timezone,
            tolerance_percentage=float(policy.tolerance),
            include_refunds=policy.include_refunds,
            paid_statuses=tuple(payments_db.paid_statuses),
            refunds_tracked=bool(payments_db.refunded_column),
            match_on=policy.match_on,
        )

        def repair(ids: list[str], day: date = day, window=(low, high)) -> int:
            synced = sync_payments(
                ids,
                client=stripe.client(account),
                table=payments.table,
                store=store,
                run_id=context.run_id,
                day=day,
                match_on=policy.match_on,
                window=window,
            )
            context.log.info(
                f"Auto-sync for {day.isoformat()}{account_suffix(account)}: "
                f"{synced.synced} synced, {len(synced.failed)} failed"
            )
            return synced.synced

        try:
            result = reconcile_charges(
                params,
                stripe=source,
                payments=payments,
                margin=policy.margin,
                charges=_within(all_charges, "created", low, high),
                rows=_within(all_rows, "created_at", low, high),
                repair=repair if policy.auto_sync else None,
            )
        except EXPECTED_ERRORS as exc:
            fail(exc, i)
        # A new version: earlier ones stay.
        report_id = store.save(result, source="dagster", run_id=context.run_id, trigger=trigger)
        metadata = report_metadata(result, report_id)
        if account != DEFAULT_ACCOUNT:
            metadata["account"] = account
        context.add_asset_metadata(metadata, partition_key=part.keys[day])
        context.log.info(
            f"Reconciliation completed for {day.isoformat()}{account_suffix(account)}: "
            f"{result.status}, discrepancy {result.discrepancy_percentage:.4f}% "
            f"(gross {result.gross_discrepancy_percentage:.4f}%)"
        )


def _within(frame: pl.DataFrame, column: str, start: datetime, end: datetime) -> pl.DataFrame:
    """The day's rows of a run's frame. A one-day run's frame is that day already: filtering it
    would copy every column of a 10M-row day for nothing."""
    inside = (pl.col(column) >= start) & (pl.col(column) < end)
    if frame.select(inside.fill_null(False).all()).item():
        return frame
    return frame.filter(inside)
