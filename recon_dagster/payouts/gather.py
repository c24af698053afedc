"""Everything one payout reconciliation needs, gathered around the pure core (no Dagster here:
the asset and the service both call it).

For arrival dates [first, last]: the payouts, plus the previous RECON_BANK_MATCH_DAYS days'
payouts (which may own deposits in the window's bank lines), the reported payouts' transactions,
the payments rows of the charges they settle (by id, whatever day those were created: never a
whole day of the table), and the bank lines from match_days before to match_days after.
"""

from __future__ import annotations

from collections.abc import Callable
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

_PAYMENT_ROWS = {"id": pl.String(), "amount": pl.Int64(), "currency": pl.String()}


def gather_and_reconcile(
    first: date,
    last: date,
    *,
    fetch_payouts: Callable[[date, date], pl.DataFrame],
    fetch_transactions: Callable[[list[str]], pl.DataFrame],
    find_payments: Callable[[list[str]], pl.DataFrame],
    read_deposits: Callable[[date, date], pl.DataFrame] | None,
    match_days: int,
    reference_configured: bool,
    as_of: date,
    payouts: pl.DataFrame | None = None,
    transactions: pl.DataFrame | None = None,
) -> PayoutResult:
    """`payouts` / `transactions`: already fetched (the upstream assets); fetched here when None.
    `read_deposits` None: no bank table, the bank step is skipped."""
    back = match_days if read_deposits is not None else 0
    if payouts is None:
        payouts = fetch_payouts(first, last)
    reported = payouts.filter(pl.col("arrival_date").is_between(first, last)).select(
        list(PAYOUTS_SCHEMA)
    )
    earlier = (
        fetch_payouts(first - timedelta(days=back), first - timedelta(days=1)).select(
            list(PAYOUTS_SCHEMA)
        )
        if back
        else empty_payouts()
    )
    if transactions is None:
        transactions = fetch_transactions(
            reported.filter(pl.col("automatic")).get_column("id").to_list()
        )
    txns = transactions.filter(pl.col("payout").is_in(reported.get_column("id").implode())).select(
        list(PAYOUT_TRANSACTIONS_SCHEMA)
    )
    ids = (
        pl.concat([txns.get_column("charge"), txns.get_column("payment_intent")])
        .drop_nulls()
        .unique()
        .sort()
        .to_list()
    )
    payments = (
        find_payments(ids).select(list(_PAYMENT_ROWS))
        if ids
        else pl.DataFrame(schema=_PAYMENT_ROWS)
    )
    deposits = (
        read_deposits(first - timedelta(days=back), last + timedelta(days=back))
        if read_deposits is not None
        else empty_bank()
    )
    everyone = pl.concat([earlier, reported]).unique("id", keep="last", maintain_order=True)
    return reconcile_payouts(
        everyone,
        txns,
        payments,
        deposits,
        first=first,
        last=last,
        as_of=as_of,
        match_days=match_days,
        bank_configured=read_deposits is not None,
        reference_configured=reference_configured,
    )
