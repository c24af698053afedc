"""The month close's assets: `stripe_balance_transactions` (every balance transaction of a day,
by `created` in RECON_TIMEZONE, from the API or a Stripe mirror that keeps them) feeds
`balance_rollforward` (opening + activity + payouts = closing per day and currency), and
`month_close` closes each ended month.

A day opens at the previous day's stored closing; where that day was never rolled forward (the
first day, or a backfill chunk's), at the balance Stripe's history gives (RECON_OPENING_BALANCES
plus everything since RECON_START_DATE, or every earlier transaction). The month close reads
Stripe again, whole, so it ties to Stripe's own balance and not to what the days stored.
"""

from datetime import datetime, timedelta

import dagster as dg
import polars as pl

from recon_dagster.core import rollforward
from recon_dagster.defs.resources import (
    AssetTablesResource,
    MonthCloseResource,
    ReconciliationPolicy,
    ReportStoreResource,
    StripeMirrorResource,
    StripeResource,
)
from recon_dagster.defs.shared import (
    BALANCE_TRANSACTIONS,
    CLOSE_GROUP,
    EXPECTED_ERRORS,
    MONTH_CLOSE,
    ROLLFORWARD,
    RunPart,
    account_table,
    daily_asset,
    run_failure,
    run_parts,
)
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT, account_and_day
from recon_dagster.sources import stripe_mirror_balance, stripe_mirror_payouts
from recon_dagster.sources.stripe_balance import fetch_balance_transactions
from recon_dagster.stores.asset_slice import Slice
from recon_dagster.stores.asset_tables import AssetTables
from recon_dagster.stores.close_store import CloseStore
from recon_dagster.usecases.month_close import Month, balance_before, close_month, record_close

# The tables the daily assets keep their rows in (asset_tables).
TRANSACTIONS_TABLE, ROLLFORWARD_TABLE = BALANCE_TRANSACTIONS.path[-1], ROLLFORWARD.path[-1]
ACTIVITY_TABLE, QUARANTINE_TABLE = "balance_activity", "balance_quarantine"


def build_close_assets(
    days: dg.PartitionsDefinition, months: dg.PartitionsDefinition, timezone: str
) -> list[dg.AssetsDefinition]:

    @daily_asset(
        days,
        CLOSE_GROUP,
        key=BALANCE_TRANSACTIONS,
        kinds={"stripe", "polars"},
        description="Every balance transaction created on each day, from the Stripe API (GET "
        "/v1/balance_transactions by created, paced) or a Stripe mirror that keeps them, with "
        "Stripe's reporting category; a malformed one is kept, named.",
    )
    def stripe_balance_transactions(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        asset_tables: AssetTablesResource,
    ) -> dg.MaterializeResult:
        rows, bad, source = 0, 0, "api"
        for part in run_parts(context):
            start, end = part.window(timezone)
            try:
                frame, source = _read_transactions(stripe, stripe_mirror, start, end, part.account)
                table = account_table(TRANSACTIONS_TABLE, part.account)
                asset_tables.tables().write(table, frame, Slice("created", start, end))
            except EXPECTED_ERRORS as exc:
                what = "Could not read balance transactions"
                raise run_failure(what, exc, part.days, part.account) from None
            rows += frame.height
            bad += frame.filter(pl.col("invalid_reason").is_not_null()).height
        return dg.MaterializeResult(
            metadata={"row_count": rows, "quarantined": bad, "stripe_source": source}
        )

    @daily_asset(
        days,
        CLOSE_GROUP,
        key=ROLLFORWARD,
        deps=[stripe_balance_transactions],
        kinds={"polars"},
        description="The Stripe balance per day and currency: opening + activity by reporting "
        "category + payouts = closing, and opening(day) = closing(day - 1).",
    )
    def balance_rollforward(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        asset_tables: AssetTablesResource,
        policy: ReconciliationPolicy,
        month_close: MonthCloseResource,
    ) -> dg.MaterializeResult:
        for part in run_parts(context):
            roll_part(context, part, stripe, asset_tables, policy, month_close)
        return dg.MaterializeResult()

    def roll_part(
        context: dg.AssetExecutionContext,
        part: RunPart,
        stripe: StripeResource,
        asset_tables: AssetTablesResource,
        policy: ReconciliationPolicy,
        month_close: MonthCloseResource,
    ) -> None:
        """One account's days of `balance_rollforward`."""
        days, account = part.days, part.account
        start, end = part.window(timezone)
        tables = asset_tables.tables()
        try:
            transactions = tables.read(
                account_table(TRANSACTIONS_TABLE, account), Slice("created", start, end)
            )
            opening = _opening(context, part, tables, stripe, policy, month_close)
            activity = rollforward.activity(transactions, policy.timezone)
            rolled = rollforward.roll_forward(activity.by_category, opening, days)
            by_day = Slice("day", days[0], days[-1] + timedelta(days=1))
            quarantined = activity.quarantined.with_columns(
                day=rollforward.local_day(pl.col("created"), policy.timezone)
            )
            # Ids as text: a list column has no PostgreSQL type in the asset tables.
            ids = pl.col("source_ids").list.join(" ")
            for table, frame in (
                (ACTIVITY_TABLE, activity.by_category.with_columns(ids)),
                (QUARANTINE_TABLE, quarantined),
                (ROLLFORWARD_TABLE, rolled),
            ):
                tables.write(account_table(table, account), frame, by_day)
        except EXPECTED_ERRORS as exc:
            raise run_failure("Could not roll the balance forward", exc, days, account) from None
        for day in days:
            rows = rolled.filter(pl.col("day") == day)
            closing = {c: int(v) for c, v in rows.select("currency", "closing").iter_rows()}
            context.add_asset_metadata(
                {"closing": dg.MetadataValue.json(closing), "unmapped": activity.unmapped},
                partition_key=part.keys[day],
            )

    @dg.asset(
        key=MONTH_CLOSE,
        partitions_def=months,
        group_name=CLOSE_GROUP,
        deps=[balance_rollforward],
        kinds={"polars"},
        description="Each ended month closed: the balance rolled forward per currency and tied to"
        " Stripe's at month end, its reconciling items and journal, stored as a new version (a "
        "locked month keeps its figures).",
    )
    def month_close_asset(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
        month_close: MonthCloseResource,
    ) -> dg.MaterializeResult:
        account, first = account_and_day(context.partition_key)
        month = Month.parse(first[:7], policy.timezone)
        store = report_store.store(account)
        try:
            result = close_month(
                month,
                client=stripe.client(account),
                store=store,
                timezone=policy.timezone,
                start_date=month_close.first_day(),
                opening_balances=month_close.opening() if account == DEFAULT_ACCOUNT else None,
                mapping=month_close.mapping(),
                log=context.log.info,
            )
        except (*EXPECTED_ERRORS, ValueError) as exc:
            raise run_failure(f"Could not close {month.name}", exc, month.days, account) from None
        figures = result.to_json_dict()
        recorded = record_close(CloseStore(store), result, source="dagster", run_id=context.run_id)
        context.log.info(f"Month {month.name} closed: {result.status}")
        return dg.MaterializeResult(
            metadata={
                "status": result.status,
                "locked": result.locked,
                "version": recorded[1] if recorded else "locked: not stored again",
                "currencies": dg.MetadataValue.json(figures["currencies"]),
                "journal_lines": result.journal.height,
                "quarantined": result.quarantined.height,
            }
        )

    return [stripe_balance_transactions, balance_rollforward, month_close_asset]


def _read_transactions(
    stripe: StripeResource,
    stripe_mirror: StripeMirrorResource,
    start: datetime,
    end: datetime,
    account: str,
) -> tuple[pl.DataFrame, str]:
    """The window's balance transactions of `account`, and where from: the Stripe mirror where
    it keeps them (Stripe Data Pipeline; it holds one account), else the API."""
    if stripe_mirror.enabled and account == DEFAULT_ACCOUNT:
        mirror = stripe_mirror.mirror()
        tables = stripe_mirror_payouts.describe(mirror)
        if stripe_mirror_balance.keeps_balance_transactions(tables):
            frame = stripe_mirror_balance.fetch_balance_transactions(mirror, tables, start, end)
            return frame, "mirror"
    return fetch_balance_transactions(stripe.client(account), start, end), "api"


def _opening(
    context: dg.AssetExecutionContext,
    part: RunPart,
    tables: AssetTables,
    stripe: StripeResource,
    policy: ReconciliationPolicy,
    month_close: MonthCloseResource,
) -> dict[str, int]:
    """The balance the part's first day opens at: the day before's stored closing, else what
    Stripe's history gives (logged: a one-time, paced listing)."""
    account, first = part.account, part.days[0]
    before = first - timedelta(days=1)
    try:
        stored = tables.read(account_table(ROLLFORWARD_TABLE, account), Slice("day", before, first))
    except EXPECTED_ERRORS:
        stored = None
    if stored is not None and stored.height:
        return {c: int(v) for c, v in stored.select("currency", "closing").iter_rows()}
    start = part.window(policy.timezone)[0]
    context.log.info(
        f"{before.isoformat()} was never rolled forward: its closing balance is summed from "
        "Stripe's balance transactions (one paced listing)"
    )
    return balance_before(
        stripe.client(account),
        start,
        timezone=policy.timezone,
        start_date=month_close.first_day(),
        # RECON_OPENING_BALANCES is the one account's; another's sums its whole history.
        opening_balances=month_close.opening() if account == DEFAULT_ACCOUNT else None,
    )
