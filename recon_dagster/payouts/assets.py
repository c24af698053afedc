"""The payout assets, daily-partitioned by arrival date: `stripe_payouts` and
`stripe_payout_transactions` feed `payout_reconciliation`, which also reads the payments table
(by the charge ids the payouts settle, whatever day they were created) and the bank table.

A partition key is the arrival date itself (Stripe's `arrival_date` is a date: see
`sources/stripe_payouts.py`). A failure records an `error` report for the run's days and fails
the run with the reason.
"""

from dataclasses import replace
from datetime import date, datetime
from typing import NoReturn
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl

from recon_dagster.charges.assets import EXPECTED_ERRORS, run_days
from recon_dagster.core.payout_result import PayoutResult
from recon_dagster.payouts.gather import gather_and_reconcile
from recon_dagster.payouts.metadata import payout_metadata
from recon_dagster.resources import (
    BankResource,
    PaymentsDatabaseResource,
    ReconciliationPolicy,
    ReportStoreResource,
    StripeMirrorResource,
    StripeResource,
)
from recon_dagster.stores.payout_store import PayoutStore

GROUP = "payouts"
# dagster-duckdb and our PostgreSQL IO manager compare partition columns with local midnights;
# a DATE cast to a timestamp is its own midnight, whatever the partitions' time zone.
ARRIVAL_EXPR = "CAST(arrival_date AS TIMESTAMP)"


def today(timezone_name: str) -> date:
    return datetime.now(ZoneInfo(timezone_name)).date()


def fail_payout_days(
    context,
    report_store: ReportStoreResource,
    policy: ReconciliationPolicy,
    bank: BankResource,
    what: str,
    exc: Exception,
    days: list[date],
) -> NoReturn:
    """Record an `error` payout report for `days`, then fail the run saying why."""
    span = (
        days[0].isoformat()
        if len(days) == 1
        else f"{days[0].isoformat()} to {days[-1].isoformat()}"
    )
    message = f"{what} for {span}: {exc}"
    store = PayoutStore(report_store.store())
    for day in days:
        store.save(
            PayoutResult.failed(
                day, day, today(policy.timezone), message, match_days=bank.match_days
            ),
            source="dagster",
            run_id=context.run_id,
        )
    raise dg.Failure(
        description=message, metadata={"days": [d.isoformat() for d in days]}, allow_retries=False
    )


def build_payout_assets(
    partitions_def: dg.PartitionsDefinition, backfill_policy: dg.BackfillPolicy
) -> list[dg.AssetsDefinition]:
    common = dict(partitions_def=partitions_def, backfill_policy=backfill_policy, group_name=GROUP)

    @dg.asset(
        **common,
        kinds={"stripe", "polars"},
        metadata={"partition_expr": ARRIVAL_EXPR},
        description="Payouts arriving on each day, from the Stripe API (GET /v1/payouts by "
        "arrival_date) "
        "or from a Stripe mirror in PostgreSQL (RECON_STRIPE_SOURCE).",
    )
    def stripe_payouts(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
        bank: BankResource,
    ) -> pl.DataFrame:
        days = run_days(context)
        try:
            fetch, _, label = readers(stripe, stripe_mirror)
            frame = fetch(days[0], days[-1])
        except EXPECTED_ERRORS as exc:
            fail_payout_days(
                context, report_store, policy, bank, "Could not read Stripe payouts", exc, days
            )
        for day in days:
            context.add_asset_metadata(
                {
                    "row_count": frame.filter(pl.col("arrival_date") == day).height,
                    "stripe_source": label,
                },
                partition_key=day.isoformat(),
            )
        return frame

    @dg.asset(
        **common,
        kinds={"stripe", "polars"},
        metadata={"partition_expr": ARRIVAL_EXPR},
        description="The balance transactions each automatic payout paid out (the payout's own "
        "included), "
        "with the payout's arrival_date.",
    )
    def stripe_payout_transactions(
        context: dg.AssetExecutionContext,
        stripe_payouts: pl.DataFrame,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
        bank: BankResource,
    ) -> pl.DataFrame:
        automatic = stripe_payouts.filter(pl.col("automatic")).get_column("id").to_list()
        try:
            _, fetch, _ = readers(stripe, stripe_mirror)
            frame = fetch(automatic)
        except EXPECTED_ERRORS as exc:
            fail_payout_days(
                context,
                report_store,
                policy,
                bank,
                "Could not read the payouts' balance transactions",
                exc,
                run_days(context),
            )
        arrivals = stripe_payouts.select(payout="id", arrival_date="arrival_date")
        return frame.join(arrivals, on="payout", how="left")

    @dg.asset(
        **common,
        kinds={"polars"},
        description="Each day's payouts itemized and matched to the payments table and the bank.",
    )
    def payout_reconciliation(
        context: dg.AssetExecutionContext,
        stripe_payouts: pl.DataFrame,
        stripe_payout_transactions: pl.DataFrame,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        payments_db: PaymentsDatabaseResource,
        bank: BankResource,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
    ) -> dg.MaterializeResult:
        store = PayoutStore(report_store.store())
        days = run_days(context)
        for i, day in enumerate(days):
            try:
                result = reconcile_day(
                    day,
                    stripe_payouts,
                    stripe_payout_transactions,
                    stripe=stripe,
                    stripe_mirror=stripe_mirror,
                    payments_db=payments_db,
                    bank=bank,
                    timezone_name=policy.timezone,
                )
            except EXPECTED_ERRORS as exc:
                fail_payout_days(
                    context,
                    report_store,
                    policy,
                    bank,
                    "Could not reconcile payouts",
                    exc,
                    days[i:],
                )
            report_id = store.save(result, source="dagster", run_id=context.run_id)
            context.add_asset_metadata(
                payout_metadata(result, report_id), partition_key=day.isoformat()
            )
            context.log.info(
                f"Payouts reconciled for {day.isoformat()}: {result.status}, {result.counts()}"
            )
        return dg.MaterializeResult()

    return [stripe_payouts, stripe_payout_transactions, payout_reconciliation]


def readers(stripe: StripeResource, stripe_mirror: StripeMirrorResource):
    """Where payouts and their transactions are read: the Stripe mirror's tables when it keeps them,
    else the API."""
    return stripe_mirror.payout_readers(stripe.fetch_payouts, stripe.fetch_payout_transactions)


def reconcile_day(
    day: date,
    payouts: pl.DataFrame,
    transactions: pl.DataFrame,
    *,
    stripe: StripeResource,
    stripe_mirror: StripeMirrorResource,
    payments_db: PaymentsDatabaseResource,
    bank: BankResource,
    timezone_name: str,
) -> PayoutResult:
    fetch_payouts, fetch_transactions, label = readers(stripe, stripe_mirror)
    result = gather_and_reconcile(
        day,
        day,
        payouts=payouts,
        transactions=transactions,
        fetch_payouts=fetch_payouts,
        fetch_transactions=fetch_transactions,
        find_payments=payments_db.find_ids,
        read_deposits=(lambda a, b: bank.read_deposits(a, b, timezone_name))
        if bank.enabled
        else None,
        match_days=bank.match_days,
        reference_configured=bool(bank.reference_column),
        as_of=today(timezone_name),
    )
    return replace(
        result,
        stripe_source=label,
        source_note=stripe_mirror.payout_catch_up_note(day, label),
        source_mismatches=stripe_mirror.payout_mismatches(result, label, stripe.retrieve_payouts),
    )
