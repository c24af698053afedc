"""Close a month, the same way for the CLI, the service and the `month_close` asset: gather the
balance transactions, Stripe's balance and the reconciling items around the pure core
(`core/month_close.py`).

The opening balance is RECON_OPENING_BALANCES at the start of RECON_START_DATE plus everything
since, or, without it, the sum of every balance transaction before the month (one listing of
the account's whole history, paced like any other: about 4 s per 10,000 transactions at
Stripe's 25 requests/s). Transactions up to now are read too: Stripe's balance is the balance
now, and the month-end balance is that minus what happened since.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import stripe

from recon_dagster.core.journal import GLMapping
from recon_dagster.core.month_close import MonthClose, ReconcilingItem, close
from recon_dagster.core.payout_frames import FAILED_STATUSES
from recon_dagster.core.rollforward import balances
from recon_dagster.days import day_window, days_between
from recon_dagster.money import to_minor
from recon_dagster.settings import ConfigError
from recon_dagster.sources import stripe_balance
from recon_dagster.sources.stripe_client import list_all
from recon_dagster.sources.stripe_payouts import payout_row
from recon_dagster.stores.close_store import CloseStore
from recon_dagster.stores.report_store import ReportStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OPEN_DISPUTES = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")
_DISPUTE_DAYS = 120  # a dispute still open is younger than this (Stripe's longest windows)
_TRANSIT_DAYS = 31  # a payout created this long before month end can still be on its way


@dataclass(frozen=True)
class Month:
    """A calendar month in the reconciliation time zone."""

    name: str  # 2026-11
    days: list[date]
    window: tuple[datetime, datetime]  # UTC instants: [first midnight, the next month's)

    @classmethod
    def parse(cls, text: str, timezone: str, variable: str = "--month") -> Month:
        found = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if not found or not 1 <= int(found[2]) <= 12:
            raise ConfigError(variable, f"{text!r} is not a month: expected YYYY-MM, e.g. 2026-11")
        first = date(int(found[1]), int(found[2]), 1)
        following = (first + timedelta(days=32)).replace(day=1)
        last = following - timedelta(days=1)
        return cls(found[0], days_between(first, last), day_window(first, last, timezone))


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def close_month(
    month: Month,
    *,
    client: stripe.StripeClient,
    store: ReportStore,
    timezone: str,
    start_date: date,
    opening_balances: dict[str, int] | None,
    mapping: GLMapping,
    now: datetime | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> MonthClose:
    """The close of `month` from the Stripe API and the report store (see the module
    docstring)."""
    now = now or datetime.now(UTC)
    start, end = month.window
    if start > now:
        raise ConfigError("--month", f"{month.name} has not begun")
    since, before = history_start(start, timezone, start_date, opening_balances)
    if opening_balances is None:
        log("RECON_OPENING_BALANCES is unset: summing every balance transaction before the month")
    began = datetime.now(UTC)
    transactions = stripe_balance.fetch_balance_transactions(client, since, now + timedelta(0, 1))
    took = (datetime.now(UTC) - began).total_seconds()
    log(f"read {transactions.height} balance transactions since {since.date()} in {took:.1f} s")
    stripe_now = {c: b.total for c, b in stripe_balance.fetch_balance(client).items()}
    items = [
        *payouts_in_transit(client, month),
        *open_disputes(client, month),
        *missing_payments(store, month),
        *late_changes(store, month),
        *prior_period_adjustments(store, month),
    ]
    return close(
        month.name,
        month.days,
        timezone,
        month.window,
        transactions,
        before,
        stripe_now,
        items,
        mapping,
        locked=CloseStore(store).is_locked(month.name),
    )


def payouts_in_transit(client: stripe.StripeClient, month: Month) -> list[ReconcilingItem]:
    """Payouts created by month end that reach the bank after it (and have not failed)."""
    items = []
    for payout in _created_by_month_end(client, "/v1/payouts", month, _TRANSIT_DAYS):
        pid, amount, currency, arrival, status, *_ = payout_row(payout)
        if arrival > month.days[-1] and status not in FAILED_STATUSES:
            items.append(ReconcilingItem("payout_in_transit", pid, amount, currency, arrival))
    return items


def open_disputes(client: stripe.StripeClient, month: Month) -> list[ReconcilingItem]:
    """Disputes opened by month end that are still open (as Stripe says now)."""
    items = []
    for dispute in _created_by_month_end(client, "/v1/disputes", month, _DISPUTE_DAYS):
        if not isinstance(dispute, dict) or dispute.get("status") not in OPEN_DISPUTES:
            continue
        amount, currency = dispute.get("amount"), dispute.get("currency")
        if isinstance(amount, int) and isinstance(currency, str):
            opened = datetime.fromtimestamp(int(dispute.get("created") or 0), UTC).date()
            items.append(
                ReconcilingItem(
                    "open_dispute", str(dispute.get("id")), amount, currency.upper(), opened
                )
            )
    return items


def _created_by_month_end(
    client: stripe.StripeClient, path: str, month: Month, days: int
) -> list[dict]:
    """The objects of a list endpoint created in the `days` days before `month` ends."""
    end = month.window[1]
    low = int((end - timedelta(days=days)).timestamp())
    context = f"listing {path} created in the {days} days before the end of {month.name}"
    return list_all(client, path, {"created": {"gte": low, "lt": int(end.timestamp())}}, context)


def missing_payments(store: ReportStore, month: Month) -> list[ReconcilingItem]:
    """Charges in Stripe missing from the payments table, and rows Stripe does not know, from
    each day's latest report."""
    items = []
    reports = store.latest_days(month.days[0], month.days[-1])
    for day in month.days:
        report = reports.get(day)
        if report is None:
            continue
        for f in report.findings:
            if f.kind in ("missing_in_database", "missing_in_stripe"):
                amount = f.stripe_amount if f.kind == "missing_in_database" else f.database_amount
                items.append(ReconcilingItem(f.kind, f.payment_id, amount or 0, f.currency, day))
    return items


def late_changes(store: ReportStore, month: Month) -> list[ReconcilingItem]:
    """Days re-reconciled after a late change since the month was last closed: the change in
    each day's Stripe total between the versions."""
    closes = CloseStore(store).closes(month.name)
    since = closes[0]["created_at"] if closes else None
    by_day: dict[str, list[dict]] = {}
    for v in sorted(store.versions(month.days[0], month.days[-1]), key=_version_order):
        by_day.setdefault(v["date"], []).append(v)
    items = []
    for day, chain in by_day.items():
        for previous, current in zip(chain, chain[1:], strict=False):
            stamped = datetime.fromisoformat(current["generated_at"])
            if current.get("trigger") != "late_change" or (since and stamped <= since):
                continue
            change = _stripe_change(previous, current)
            if change is not None:
                label = f"{day} v{current['version']}"
                items.append(
                    ReconcilingItem("late_change", label, *change, date.fromisoformat(day))
                )
    return items


def prior_period_adjustments(store: ReportStore, month: Month) -> list[ReconcilingItem]:
    """Late changes to a locked month's days booked in this one: each the change in the day's
    Stripe total between the report before the booking and the first after it (0 until the
    day's re-run has stored one)."""
    items = []
    for booked in CloseStore(store).adjustments(month.name):
        day, at = booked["day"], booked["recorded_at"]
        versions = sorted(store.versions(day), key=_version_order)
        before = [v for v in versions if datetime.fromisoformat(v["generated_at"]) <= at]
        after = [v for v in versions if datetime.fromisoformat(v["generated_at"]) > at]
        if not before:
            continue
        change = _stripe_change(before[-1], after[0]) if after else (0, before[-1]["currency"])
        if change is not None and change[1]:
            label = f"{day.isoformat()} ({booked['locked_month']}, locked)"
            items.append(ReconcilingItem("prior_period_adjustment", label, *change, day))
    return items


def _version_order(version: dict) -> tuple:
    return (version["date"], version["version"])


def _stripe_change(previous: dict, current: dict) -> tuple[int, str] | None:
    """How a day's Stripe total moved between two report versions, in its currency (None when
    the versions differ in currency or have none)."""
    currency = current.get("currency")
    if not currency or previous.get("currency") != currency:
        return None
    new, old = (
        to_minor(current["stripe_total"], currency),
        to_minor(previous["stripe_total"], currency),
    )
    return new - old, currency


def history_start(
    moment: datetime, timezone: str, start_date: date, opening_balances: dict[str, int] | None
) -> tuple[datetime, dict[str, int]]:
    """Where the balance history that leads to `moment` starts, and the balance there:
    RECON_OPENING_BALANCES at the start of RECON_START_DATE, or nothing before Stripe's first
    transaction. A moment before RECON_START_DATE cannot be known from the opening balances."""
    if opening_balances is None:
        return _EPOCH, {}
    since = day_window(start_date, start_date, timezone)[0]
    if moment < since:
        raise ConfigError(
            "RECON_OPENING_BALANCES",
            f"is the balance at {since.isoformat()} (the start of RECON_START_DATE): nothing is "
            f"known of {moment.isoformat()}, before it",
        )
    return since, dict(opening_balances)


def balance_before(
    client: stripe.StripeClient,
    moment: datetime,
    *,
    timezone: str,
    start_date: date,
    opening_balances: dict[str, int] | None,
) -> dict[str, int]:
    """The Stripe balance per currency at `moment`: RECON_OPENING_BALANCES plus every balance
    transaction since the start of RECON_START_DATE, or, without it, every one before `moment`."""
    since, balance = history_start(moment, timezone, start_date, opening_balances)
    history = stripe_balance.fetch_balance_transactions(client, since, moment)
    for currency, net in balances(history).items():
        balance[currency] = balance.get(currency, 0) + net
    return balance


def record_close(
    closes: CloseStore, result: MonthClose, *, source: str, run_id: str | None = None
) -> tuple[str, int] | None:
    """Store `result` as its month's next version, (id, version); a locked month's figures stay
    as they were locked: nothing is stored (None)."""
    if result.locked:
        return None
    return closes.save(result.to_json_dict(), source=source, run_id=run_id)
