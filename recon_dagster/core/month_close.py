"""A month closed as finance signs it: per currency the opening balance, the activity by
category, the payouts and the closing balance, tied to Stripe's balance at month end; the
reconciling items that explain the rest; the journal. Pure: the caller brings the data.

Stripe's `GET /v1/balance` is the balance now, so the balance at month end is that minus the net
of every transaction created since; a month still running is tied to the balance now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl

from recon_dagster.core import rollforward
from recon_dagster.core.balance_frames import PAYOUT_CATEGORIES
from recon_dagster.core.journal import GLMapping, journal, unbalanced
from recon_dagster.money import to_major

# What a reconciling item can be, in the order the close lists them.
ITEM_KINDS: tuple[str, ...] = (
    "payout_in_transit",  # paid out by Stripe before month end, not in the bank by then
    "funds_not_yet_available",  # pending: in the balance, not yet available
    "missing_in_database",  # a charge in Stripe the payments table lacks (the daily reports)
    "missing_in_stripe",  # a payments row Stripe does not know
    "open_dispute",
    "late_change",  # a day re-reconciled after the month was last closed
    "prior_period_adjustment",  # a late change to a locked month, booked in this one
)


@dataclass(frozen=True)
class ReconcilingItem:
    kind: str
    id: str
    amount: int  # minor units
    currency: str
    date: date | None


@dataclass(frozen=True)
class MonthClose:
    """The figures of one close (see the module docstring); `to_json_dict` is the CLI's shape."""

    month: str
    first: date
    last: date
    timezone: str
    rollforward: pl.DataFrame  # rollforward.ROLLFORWARD_SCHEMA, one row per day and currency
    activity: pl.DataFrame  # rollforward.ACTIVITY_SCHEMA
    journal: pl.DataFrame  # journal.JOURNAL_SCHEMA
    stripe_balance: dict[str, int] | None  # at month end; None when it could not be known
    items: list[ReconcilingItem]
    quarantined: pl.DataFrame  # rollforward.QUARANTINE_COLUMNS
    unmapped: list[str]
    locked: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def currencies(self) -> list[str]:
        return sorted(set(self.rollforward.get_column("currency")))

    def closing(self, currency: str) -> int:
        rows = self.rollforward.filter(pl.col("currency") == currency).sort("day")
        return int(rows.get_column("closing")[-1]) if rows.height else 0

    def opening(self, currency: str) -> int:
        rows = self.rollforward.filter(pl.col("currency") == currency).sort("day")
        return int(rows.get_column("opening")[0]) if rows.height else 0

    def difference(self, currency: str) -> int | None:
        """Closing minus Stripe's balance at month end; None when Stripe's is unknown."""
        if self.stripe_balance is None:
            return None
        return self.closing(currency) - self.stripe_balance.get(currency, 0)

    def by_category(self, currency: str) -> dict[str, int]:
        rows = self.activity.filter(
            pl.col("currency") == currency, ~pl.col("category").is_in(PAYOUT_CATEGORIES)
        )
        sums = rows.group_by("category").agg(pl.col("amount").sum()).sort("category")
        return {str(c): int(a) for c, a in sums.iter_rows()}

    def payouts(self, currency: str) -> int:
        rows = self.rollforward.filter(pl.col("currency") == currency)
        return int(rows.get_column("payouts").sum())

    @property
    def balanced(self) -> bool:
        return unbalanced(self.journal).is_empty()

    @property
    def tied_out(self) -> bool:
        """Every currency equals Stripe's balance, nothing was quarantined, the journal
        balances."""
        return (
            self.stripe_balance is not None
            and all(self.difference(c) == 0 for c in self.currencies)
            and not (set(self.stripe_balance) - set(self.currencies))
            and self.quarantined.is_empty()
            and self.balanced
        )

    @property
    def status(self) -> str:
        return "tied_out" if self.tied_out else "not_tied_out"

    def to_json_dict(self) -> dict[str, Any]:
        """Money as exact decimal strings in major units, as every JSON the CLI prints."""

        def major(minor: int | None, currency: str) -> str | None:
            return None if minor is None else str(to_major(minor, currency))

        currencies = sorted(set(self.currencies) | set(self.stripe_balance or {}))
        out = []
        for c in currencies:
            stripe = None if self.stripe_balance is None else self.stripe_balance.get(c, 0)
            out.append(
                {
                    "currency": c,
                    "opening": major(self.opening(c), c),
                    "activity": {k: major(v, c) for k, v in self.by_category(c).items()},
                    "payouts": major(self.payouts(c), c),
                    "closing": major(self.closing(c), c),
                    "stripe_balance": major(stripe, c),
                    "difference": major(None if stripe is None else self.closing(c) - stripe, c),
                    "reconciling_items": [
                        {
                            "kind": i.kind,
                            "id": i.id,
                            "amount": major(i.amount, c),
                            "date": i.date.isoformat() if i.date else None,
                        }
                        for i in self.items
                        if i.currency == c
                    ],
                }
            )
        problems = unbalanced(self.journal)
        return {
            "month": self.month,
            "first_day": self.first.isoformat(),
            "last_day": self.last.isoformat(),
            "timezone": self.timezone,
            "currencies": out,
            "journal": {
                "lines": self.journal.height,
                "balanced": problems.is_empty(),
                "unbalanced": [
                    {"date": d.isoformat(), "currency": c, "debit": db, "credit": cr}
                    for d, c, db, cr in problems.iter_rows()
                ],
            },
            "quarantined": [
                {"id": i, "column": col, "reason": reason}
                for i, _created, col, reason in self.quarantined.iter_rows()
            ],
            "unmapped_categories": self.unmapped,
            "notes": self.notes,
            "locked": self.locked,
            "status": self.status,
        }


def close(
    month: str,
    days: list[date],
    timezone: str,
    window: tuple[datetime, datetime],
    transactions: pl.DataFrame,
    balance_before: dict[str, int],
    stripe_now: dict[str, int] | None,
    items: list[ReconcilingItem],
    mapping: GLMapping,
    *,
    locked: bool = False,
) -> MonthClose:
    """Close `month` (`days`, the UTC `window` they cover) from `transactions`: every balance
    transaction created from some moment before the month up to now, whose balance at that moment
    was `balance_before`. `stripe_now`: `GET /v1/balance` totals now (None: unknown)."""
    start, end = window
    created = pl.col("created")
    before = transactions.filter(created < start)
    during = transactions.filter(created >= start, created < end)
    after = transactions.filter(created >= end)
    opening = balance_before.copy()
    for currency, net in rollforward.balances(before).items():
        opening[currency] = opening.get(currency, 0) + net
    act = rollforward.activity(during, timezone)
    rolled = rollforward.roll_forward(act.by_category, opening, days)
    stripe_at_end = None
    if stripe_now is not None:
        since = rollforward.balances(after)
        stripe_at_end = {
            c: stripe_now.get(c, 0) - since.get(c, 0) for c in sorted(set(stripe_now) | set(since))
        }
        stripe_at_end = {c: v for c, v in stripe_at_end.items() if v or c in opening}
    pending = rollforward.pending(transactions.filter(created < end), end)
    waiting = [
        ReconcilingItem("funds_not_yet_available", f"pending {c}", amount, c, days[-1])
        for c, amount in sorted(pending.items())
    ]
    earlier = before.filter(pl.col("invalid_reason").is_not_null())
    quarantined = pl.concat(
        [earlier.select(rollforward.QUARANTINE_COLUMNS), act.quarantined], how="vertical"
    )
    order = {kind: i for i, kind in enumerate(ITEM_KINDS)}
    every = sorted([*waiting, *items], key=lambda i: (order.get(i.kind, 99), i.currency, i.id))
    return MonthClose(
        month=month,
        first=days[0],
        last=days[-1],
        timezone=timezone,
        rollforward=rolled,
        activity=act.by_category,
        journal=journal(act.by_category, mapping, act.unmapped),
        stripe_balance=stripe_at_end,
        items=every,
        quarantined=quarantined,
        unmapped=act.unmapped,
        locked=locked,
    )
