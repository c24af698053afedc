"""A month of Stripe balance activity with every kind a close meets: charges with fees, a partial
refund, a lost and a won dispute, an open one, a standalone fee, an adjustment, a reserve, a
failed payout (and its reversal), a paid payout and one still in transit at month end; plus what
happened before the month (the opening) and after it (up to `now`).

The objects are Stripe's shapes (`stripe_objects`), so the local server's `GET /v1/balance` is
what these transactions add up to: a close of the month must tie out to it to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from recon_dagster.testing.stripe_objects import (
    make_balance_transaction,
    make_charge,
    make_dispute,
    make_payout,
)


@dataclass
class MonthActivity:
    """The objects to serve, and what a close of the month must find."""

    charges: list[dict] = field(default_factory=list)
    disputes: list[dict] = field(default_factory=list)
    payouts: list[dict] = field(default_factory=list)
    transactions: list[dict] = field(default_factory=list)
    in_transit: list[str] = field(default_factory=list)  # payout ids
    open_disputes: list[str] = field(default_factory=list)


def fee_of(amount: int) -> int:
    """Stripe's standard card fee: 2.9% + 30 (in the currency's minor units, for the test)."""
    return amount * 29 // 1000 + 30


def epoch(day: date, hour: int, timezone: str) -> int:
    return int(datetime.combine(day, time(hour), tzinfo=ZoneInfo(timezone)).timestamp())


def a_month(first: date, timezone: str = "UTC", currency: str = "usd") -> MonthActivity:
    """The story of the module docstring for the month beginning `first`, in one currency."""
    m = MonthActivity()
    nxt = (first + timedelta(days=32)).replace(day=1)
    last = nxt - timedelta(days=1)
    cur = currency.lower()
    n = 0

    def txn(amount: int, kind: str, category: str, at: int, *, fee: int = 0, source=None) -> dict:
        nonlocal n
        n += 1
        t = make_balance_transaction(
            f"txn_{cur}_{first:%Y%m}_{n:04d}",
            amount,
            fee=fee,
            currency=cur,
            type=kind,
            reporting_category=category,
            source=source,
            created=at,
            # A charge's net is pending two days; what leaves the balance leaves it at once.
            available_on=at + 2 * 86_400 if kind == "charge" else at,
        )
        m.transactions.append(t)
        return t

    def charge(cid: str, amount: int, at: int, **extra) -> dict:
        c = make_charge(cid, amount, currency=cur, created=at, **extra)
        m.charges.append(c)
        txn(amount, "charge", "charge", at, fee=fee_of(amount), source=cid)
        return c

    def day(d: int, hour: int = 12) -> int:
        return epoch(first.replace(day=d), hour, timezone)

    p = f"{cur}_{first:%Y%m}"
    # Before the month: what the opening balance is made of.
    charge(f"ch_{p}_before", 50_000, epoch(first - timedelta(days=3), 12, timezone))
    # The month.
    charge(f"ch_{p}_1", 10_000, day(1, 0))  # the first hour: the DST day in November
    charge(f"ch_{p}_2", 5_000, day(2))
    charge(f"ch_{p}_3", 8_000, day(3))
    charge(f"ch_{p}_4", 12_000, day(4), amount_refunded=2_500)
    txn(-2_500, "refund", "refund", day(5), source=f"re_{p}_4")
    charge(f"ch_{p}_5", 6_000, day(6), disputed=True)
    charge(f"ch_{p}_6", 7_000, day(7), disputed=True)
    charge(f"ch_{p}_7", 9_000, day(8), disputed=True)
    # A lost dispute, a won one (the money and the fee come back), one still open.
    for dispute, charge_id, amount, status, opened in (
        (f"du_{p}_lost", f"ch_{p}_5", 6_000, "lost", day(9)),
        (f"du_{p}_won", f"ch_{p}_6", 7_000, "won", day(10)),
        (f"du_{p}_open", f"ch_{p}_7", 9_000, "needs_response", day(11)),
    ):
        m.disputes.append(
            make_dispute(dispute, charge_id, amount, currency=cur, status=status, created=opened)
        )
        txn(-amount, "adjustment", "dispute", opened, fee=1_500, source=dispute)
        if status == "won":
            txn(amount, "adjustment", "dispute_reversal", day(20), fee=-1_500, source=dispute)
        if status == "needs_response":
            m.open_disputes.append(dispute)
    txn(-200, "stripe_fee", "fee", day(12))  # a Radar fee, on its own
    txn(300, "adjustment", "other_adjustment", day(13))
    txn(-1_000, "reserve_transaction", "risk_reserved_funds", day(14))
    # A payout that failed (its money comes back), one paid, one in transit at month end.
    failed = make_payout(
        f"po_{p}_failed",
        5_000,
        currency=cur,
        created=day(15),
        arrival_date=day(17, 0),
        status="failed",
        failure_code="account_closed",
    )
    paid = make_payout(f"po_{p}_paid", 20_000, currency=cur, created=day(16), arrival_date=day(18))
    late = last.day
    transit = make_payout(
        f"po_{p}_transit",
        10_000,
        currency=cur,
        created=day(late, 20),
        arrival_date=epoch(nxt + timedelta(days=1), 0, "UTC"),
        status="in_transit",
    )
    m.payouts += [failed, paid, transit]
    m.in_transit.append(transit["id"])
    txn(-5_000, "payout", "payout", day(15), source=failed["id"])
    txn(5_000, "payout_failure", "payout_reversal", day(17), source=failed["id"])
    txn(-20_000, "payout", "payout", day(16), source=paid["id"])
    txn(-10_000, "payout", "payout", day(late, 20), source=transit["id"])
    charge(f"ch_{p}_late", 4_000, day(late, 22))  # still pending at month end
    # After the month: Stripe's balance now includes it, the month end must not.
    charge(f"ch_{p}_after", 3_000, epoch(nxt, 12, timezone))
    return m
