"""Reconcile the payouts arriving on a window of days, the same way for the Dagster asset and
the service: everything the pure core needs, gathered around it, and where the payouts came from.

For arrival dates [first, last]: the payouts, plus the previous RECON_BANK_MATCH_DAYS days'
payouts (which may own deposits in the window's bank lines), the reported payouts' transactions,
the payments rows of the charges they settle (by id, whatever day those were created: never a
whole day of the table), and the bank lines from match_days before to match_days after.
"""

from dataclasses import replace
from datetime import date, timedelta

import polars as pl

from recon_dagster.core.payout_frames import (
    PAYOUT_TRANSACTIONS_SCHEMA,
    PAYOUTS_SCHEMA,
    empty_bank,
    empty_payouts,
)
from recon_dagster.core.payout_result import PayoutResult
from recon_dagster.core.payouts import reconcile_payouts
from recon_dagster.sources.bank import BankLines
from recon_dagster.sources.payments_db import PaymentsReader
from recon_dagster.sources.stripe_source import PayoutSource

_PAYMENT_ROWS = {"id": pl.String(), "amount": pl.Int64(), "currency": pl.String()}


def reconcile_payout_days(
    first: date,
    last: date,
    *,
    stripe: PayoutSource,
    payments: PaymentsReader,
    bank: BankLines | None,
    match_days: int,
    as_of: date,
    payouts: pl.DataFrame | None = None,
    transactions: pl.DataFrame | None = None,
) -> PayoutResult:
    """`payouts` / `transactions`: already read (the upstream assets); read here when None.
    `bank` None: no bank table, the bank step is skipped.

    Raises the sources' errors for the caller to record."""
    back = match_days if bank is not None else 0
    if payouts is None:
        payouts = stripe.fetch_payouts(first, last)
    reported = payouts.filter(pl.col("arrival_date").is_between(first, last)).select(
        list(PAYOUTS_SCHEMA)
    )
    earlier = (
        stripe.fetch_payouts(first - timedelta(days=back), first - timedelta(days=1))
        if back
        else empty_payouts()
    ).select(list(PAYOUTS_SCHEMA))
    if transactions is None:
        automatic = reported.filter(pl.col("automatic")).get_column("id").to_list()
        transactions = stripe.fetch_payout_transactions(automatic)
    txns = transactions.filter(pl.col("payout").is_in(reported.get_column("id").implode())).select(
        list(PAYOUT_TRANSACTIONS_SCHEMA)
    )
    settled = pl.concat([txns.get_column("charge"), txns.get_column("payment_intent")])
    ids = settled.drop_nulls().unique().sort().to_list()
    rows = (
        payments.find_ids(ids).select(list(_PAYMENT_ROWS))
        if ids
        else pl.DataFrame(schema=_PAYMENT_ROWS)
    )
    deposits = (
        bank.read_deposits(first - timedelta(days=back), last + timedelta(days=back))
        if bank is not None
        else empty_bank()
    )
    everyone = pl.concat([earlier, reported]).unique("id", keep="last", maintain_order=True)
    result = reconcile_payouts(
        everyone,
        txns,
        rows,
        deposits,
        first=first,
        last=last,
        as_of=as_of,
        match_days=match_days,
        bank_configured=bank is not None,
        reference_configured=bank is not None and bank.has_reference,
    )
    verdict = stripe.payout_verdict(result)
    return replace(
        result,
        stripe_source=verdict.label,
        source_note=verdict.note,
        source_mismatches=verdict.mismatches,
    )
