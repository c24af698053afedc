"""The payout assets, daily-partitioned by arrival date: `stripe_payouts` and
`stripe_payout_transactions` feed `payout_reconciliation`, which also reads the payments table
(by the charge ids the payouts settle, whatever day they were created) and the bank table.

A partition key is the arrival date itself (Stripe's `arrival_date` is a date: see
`sources/stripe_payouts.py`). The input assets keep their rows in the asset tables, by arrival
date. A failure records an `error` report for the run's days and fails the run with the reason.
"""

from datetime import timedelta
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
    RunPart,
    account_suffix,
    account_table,
    daily_asset,
    run_failure,
    run_parts,
)
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT
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
    parts: list[RunPart],
) -> NoReturn:
    """Record an `error` payout report for the days of `parts` (what the run has not done), then
    fail the run saying why."""
    failure = run_failure(what, exc, parts[0].days, parts[0].account)
    as_of = today(policy.timezone)
    for part in parts:
        store = PayoutStore(report_store.store(part.account))
        for day in part.days:
            failed = PayoutResult.failed(
                day, day, as_of, failure.description or "", match_days=bank.match_days
            )
            store.save(failed, source="dagster", run_id=context.run_id)
    raise failure


def arrivals(part: RunPart) -> Slice:
    """A part's rows of a payout table: its days' arrival dates."""
    return Slice("arrival_date", part.days[0], part.days[-1] + timedelta(days=1))


def only(account: str) -> str | None:
    """The account whose rows and bank lines to read: None (all) for the one `default`."""
    return None if account == DEFAULT_ACCOUNT else account


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
        parts = run_parts(context)
        for i, part in enumerate(parts):
            days = part.days
            try:
                _, source = stripe_mirror.sources(stripe, part.account)
                frame = source.fetch_payouts(days[0], days[-1])
                table = account_table(STRIPE_PAYOUTS, part.account)
                asset_tables.tables().write(table, frame, arrivals(part))
            except EXPECTED_ERRORS as exc:
                what = "Could not read Stripe payouts"
                fail_payout_days(context, report_store, policy, bank, what, exc, parts[i:])
            for day, key in sorted(part.keys.items()):
                count = frame.filter(pl.col("arrival_date") == day).height
                context.add_asset_metadata(
                    {"row_count": count, "stripe_source": source.label}, partition_key=key
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
        parts, rows = run_parts(context), 0
        for i, part in enumerate(parts):
            try:
                _, source = stripe_mirror.sources(stripe, part.account)
                tables = asset_tables.tables()
                payouts = tables.read(account_table(STRIPE_PAYOUTS, part.account), arrivals(part))
                automatic = payouts.filter(pl.col("automatic")).get_column("id").to_list()
                arrival = payouts.select(payout="id", arrival_date="arrival_date")
                frame = source.fetch_payout_transactions(automatic)
                frame = frame.join(arrival, on="payout", how="left")
                paid_out = account_table(PAYOUT_TRANSACTIONS, part.account)
                tables.write(paid_out, frame, arrivals(part))
            except EXPECTED_ERRORS as exc:
                what = "Could not read the payouts' balance transactions"
                fail_payout_days(context, report_store, policy, bank, what, exc, parts[i:])
            rows += frame.height
        return dg.MaterializeResult(metadata={"row_count": rows})

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
        what = "Could not reconcile payouts"
        parts = run_parts(context)
        for p, part in enumerate(parts):
            account, days = part.account, part.days
            store = PayoutStore(report_store.store(account))

            def fail(
                exc: Exception, i: int = 0, part: RunPart = part, later: list = parts[p + 1 :]
            ) -> NoReturn:
                left = [RunPart(part.account, {d: part.keys[d] for d in part.days[i:]}), *later]
                fail_payout_days(context, report_store, policy, bank, what, exc, left)

            try:
                _, source = stripe_mirror.sources(stripe, account)
                tables = asset_tables.tables()
                payouts = tables.read(account_table(STRIPE_PAYOUTS, account), arrivals(part))
                paid_out = account_table(PAYOUT_TRANSACTIONS, account)
                transactions = tables.read(paid_out, arrivals(part))
                payments = payments_db.reader(only(account))
                lines = bank.lines(policy.timezone, only(account))
            except EXPECTED_ERRORS as exc:
                fail(exc)
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
                    fail(exc, i)
                report_id = store.save(result, source="dagster", run_id=context.run_id)
                metadata = payout_metadata(result, report_id)
                if account != DEFAULT_ACCOUNT:
                    metadata["account"] = dg.MetadataValue.text(account)
                context.add_asset_metadata(metadata, partition_key=part.keys[day])
                context.log.info(
                    f"Payouts reconciled for {day.isoformat()}{account_suffix(account)}: "
                    f"{result.status}, {result.counts()}"
                )
        return dg.MaterializeResult()

    return [stripe_payouts, stripe_payout_transactions, payout_reconciliation]
