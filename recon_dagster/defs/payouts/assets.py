"""The payout assets, daily-partitioned by arrival date: `stripe_payouts` and
`stripe_payout_transactions` feed `payout_reconciliation`, which also reads the payments table
(by the charge ids the payouts settle, whatever day they were created) and the bank table.

A partition key is the arrival date itself (Stripe's `arrival_date` is a date: see
`sources/stripe_payouts.py`). The input assets keep their rows in the asset tables, by arrival
date. A failure records an `error` report for the run's days and fails the run with the reason.
"""

from datetime import date, timedelta
from typing import NoReturn

import dagster as dg
import polars as pl

from recon_dagster.core.payout_result import PayoutResult
from recon_dagster.days import today
from recon_dagster.defs.payouts.metadata import payout_metadata
from recon_dagster.defs.resources import (
    AssetTablesResource,
    BankResource,
    PaymentsDatabaseResource,
    ReconciliationPolicy,
    ReportStoreResource,
    StripeMirrorResource,
    StripeResource,
)
from recon_dagster.defs.shared import (
    EXPECTED_ERRORS,
    PAYOUT_TRANSACTIONS,
    PAYOUTS_GROUP,
    STRIPE_PAYOUTS,
    account_suffix,
    account_table,
    daily_asset,
    run_account,
    run_days,
    run_failure,
)
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT, account_and_day
from recon_dagster.stores.asset_slice import Slice
from recon_dagster.stores.payout_store import PayoutStore
from recon_dagster.usecases.payouts import reconcile_payout_days


def fail_payout_days(
    context: dg.AssetExecutionContext,
    report_store: ReportStoreResource,
    policy: ReconciliationPolicy,
    bank: BankResource,
    what: str,
    exc: Exception,
    days: list[date] | None = None,
) -> NoReturn:
    """Record an `error` payout report for the run's days (or `days`), then fail the run saying
    why."""
    days = days or run_days(context)
    account = run_account(context)
    failure = run_failure(what, exc, days, account)
    store = PayoutStore(report_store.store(account))
    as_of = today(policy.timezone)
    for day in days:
        failed = PayoutResult.failed(
            day, day, as_of, failure.description or "", match_days=bank.match_days
        )
        store.save(failed, source="dagster", run_id=context.run_id)
    raise failure


def arrivals(context: dg.AssetExecutionContext) -> Slice:
    """The run's rows of a payout table: its days' arrival dates."""
    days = run_days(context)
    return Slice("arrival_date", days[0], days[-1] + timedelta(days=1))


def build_payout_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:

    @daily_asset(
        partitions_def,
        PAYOUTS_GROUP,
        key=STRIPE_PAYOUTS,
        kinds={"stripe", "polars"},
        description="Payouts arriving on each day, from the Stripe API (GET /v1/payouts by "
        "arrival_date) or from a Stripe mirror in PostgreSQL (RECON_STRIPE_SOURCE).",
    )
    def stripe_payouts(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        asset_tables: AssetTablesResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
        bank: BankResource,
    ) -> dg.MaterializeResult:
        days, account = run_days(context), run_account(context)
        keys = {account_and_day(key)[1]: key for key in context.partition_keys}
        try:
            _, source = stripe_mirror.sources(stripe, account)
            frame = source.fetch_payouts(days[0], days[-1])
            table = account_table(STRIPE_PAYOUTS, account)
            asset_tables.tables().write(table, frame, arrivals(context))
        except EXPECTED_ERRORS as exc:
            what = "Could not read Stripe payouts"
            fail_payout_days(context, report_store, policy, bank, what, exc)
        for day in days:
            count = frame.filter(pl.col("arrival_date") == day).height
            context.add_asset_metadata(
                {"row_count": count, "stripe_source": source.label},
                partition_key=keys[day.isoformat()],
            )
        return dg.MaterializeResult()

    @daily_asset(
        partitions_def,
        PAYOUTS_GROUP,
        key=PAYOUT_TRANSACTIONS,
        deps=[stripe_payouts],
        kinds={"stripe", "polars"},
        description="The balance transactions each automatic payout paid out (the payout's own "
        "included), with the payout's arrival_date.",
    )
    def stripe_payout_transactions(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        asset_tables: AssetTablesResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
        bank: BankResource,
    ) -> dg.MaterializeResult:
        account = run_account(context)
        try:
            _, source = stripe_mirror.sources(stripe, account)
            tables = asset_tables.tables()
            payouts = tables.read(account_table(STRIPE_PAYOUTS, account), arrivals(context))
            automatic = payouts.filter(pl.col("automatic")).get_column("id").to_list()
            arrival = payouts.select(payout="id", arrival_date="arrival_date")
            frame = source.fetch_payout_transactions(automatic)
            frame = frame.join(arrival, on="payout", how="left")
            tables.write(account_table(PAYOUT_TRANSACTIONS, account), frame, arrivals(context))
        except EXPECTED_ERRORS as exc:
            what = "Could not read the payouts' balance transactions"
            fail_payout_days(context, report_store, policy, bank, what, exc)
        return dg.MaterializeResult(metadata={"row_count": frame.height})

    @daily_asset(
        partitions_def,
        PAYOUTS_GROUP,
        deps=[stripe_payouts, stripe_payout_transactions],
        kinds={"polars"},
        description="Each day's payouts itemized and matched to the payments table and the bank.",
    )
    def payout_reconciliation(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        payments_db: PaymentsDatabaseResource,
        bank: BankResource,
        asset_tables: AssetTablesResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
    ) -> dg.MaterializeResult:
        account = run_account(context)
        store = PayoutStore(report_store.store(account))
        days = run_days(context)
        keys = {account_and_day(key)[1]: key for key in context.partition_keys}
        what = "Could not reconcile payouts"
        only = account if account != DEFAULT_ACCOUNT else None  # that account's rows and lines
        try:
            _, source = stripe_mirror.sources(stripe, account)
            tables = asset_tables.tables()
            payouts = tables.read(account_table(STRIPE_PAYOUTS, account), arrivals(context))
            transactions = tables.read(
                account_table(PAYOUT_TRANSACTIONS, account), arrivals(context)
            )
            payments, lines = payments_db.reader(only), bank.lines(policy.timezone, only)
        except EXPECTED_ERRORS as exc:
            fail_payout_days(context, report_store, policy, bank, what, exc)
        for i, day in enumerate(days):
            try:
                result = reconcile_payout_days(
                    day,
                    day,
                    stripe=source,
                    payments=payments,
                    bank=lines,
                    match_days=bank.match_days,
                    as_of=today(policy.timezone),
                    payouts=payouts,
                    transactions=transactions,
                )
            except EXPECTED_ERRORS as exc:
                fail_payout_days(context, report_store, policy, bank, what, exc, days[i:])
            report_id = store.save(result, source="dagster", run_id=context.run_id)
            metadata = payout_metadata(result, report_id)
            if account != DEFAULT_ACCOUNT:
                metadata["account"] = dg.MetadataValue.text(account)
            context.add_asset_metadata(metadata, partition_key=keys[day.isoformat()])
            context.log.info(
                f"Payouts reconciled for {day.isoformat()}{account_suffix(account)}: "
                f"{result.status}, {result.counts()}"
            )
        return dg.MaterializeResult()

    return [stripe_payouts, stripe_payout_transactions, payout_reconciliation]
