"""Stripe balance transactions by `created`, and the account's balance now (`GET /v1/balance`).

Through the official SDK and the same paced, retrying client as the charges (`stripe_client`).
A window is listed as equal sub-windows concurrently (`GET /v1/balance_transactions?created[gte]
&created[lt]`, a page of 100 per request): the client's pacer holds the endpoint to its limit.
A transaction with no currency or a non-integer amount, fee or net is kept with the reason, to be
quarantined by the core; one without an id or a `created` cannot be placed and fails the read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
import stripe

from recon_dagster.core.balance_frames import BALANCE_TRANSACTIONS_SCHEMA, PAYOUT_CATEGORIES
from recon_dagster.money import CurrencyError, normalize_currency
from recon_dagster.sources.stripe_client import (
    StripeDataError,
    ceil_seconds,
    get,
    list_all,
    run_all,
    split_window,
)

PATH = "/v1/balance_transactions"
_MONEY = ("amount", "fee", "net")


def fetch_balance_transactions(
    client: stripe.StripeClient,
    start: datetime,
    end: datetime,
    *,
    slices: int = 8,
    max_workers: int = 8,
) -> pl.DataFrame:
    """Every balance transaction created in [start, end), oldest first, as
    `BALANCE_TRANSACTIONS_SCHEMA`; `slices` sub-windows are listed at once."""
    low, high = ceil_seconds(start), ceil_seconds(end)
    if low >= high:
        return pl.DataFrame(schema=BALANCE_TRANSACTIONS_SCHEMA)
    windows = split_window(low, high, slices)
    context = f"listing balance transactions created in [{start.isoformat()}, {end.isoformat()})"

    def one(window: tuple[int, int]) -> list[tuple[Any, ...]]:
        params = {"created": {"gte": window[0], "lt": window[1]}}
        return [transaction_row(t) for t in list_all(client, PATH, params, context)]

    rows = [row for part in run_all(one, windows, max_workers) for row in part]
    frame = pl.DataFrame(rows, schema=BALANCE_TRANSACTIONS_SCHEMA, orient="row")
    return frame.unique(subset="id", keep="first").sort("created", "id")


def transaction_row(txn: Any) -> tuple[Any, ...]:
    """One transaction as a `BALANCE_TRANSACTIONS_SCHEMA` row; a bad field is named in it."""
    if not isinstance(txn, dict) or not isinstance(txn.get("id"), str) or not txn["id"]:
        raise StripeDataError("Stripe sent a balance transaction without an id.", field="id")
    tid = txn["id"]
    created = _instant(txn, "created", required=True)
    available_on = _instant(txn, "available_on", required=False) or created
    problem: tuple[str, str] | None = None
    try:
        currency: str | None = normalize_currency(txn.get("currency"))
    except CurrencyError:
        currency = None
        problem = ("currency", f"currency {txn.get('currency')!r} is not an ISO 4217 code")
    money: list[int | None] = []
    for name in _MONEY:
        value = txn.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            money.append(None)
            problem = problem or (name, f"{name} {value!r} is not an integer of minor units")
        else:
            money.append(value)
    source = txn.get("source")
    source = source.get("id") if isinstance(source, dict) else source
    category = txn.get("reporting_category") or txn.get("type")
    return (
        tid,
        created,
        available_on,
        currency,
        *money,
        _text(txn.get("type")),
        _text(category),
        _text(source),
        # The API names no payout on a transaction (only Stripe's payout reconciliation report
        # does): the payout is known for the payouts' own transactions.
        _text(source) if category in PAYOUT_CATEGORIES else None,
        problem[0] if problem else None,
        f"balance transaction {tid}: {problem[1]}" if problem else None,
    )


@dataclass(frozen=True)
class Balance:
    """One currency of `GET /v1/balance`, in minor units."""

    available: int
    pending: int
    connect_reserved: int = 0

    @property
    def total(self) -> int:
        """What the balance transactions add up to: available + pending (+ connect reserved)."""
        return self.available + self.pending + self.connect_reserved


def fetch_balance(client: stripe.StripeClient) -> dict[str, Balance]:
    """The account's balance now, per upper-case currency."""
    body = get(client, "retrieving the balance", "/v1/balance")
    if not isinstance(body, dict):
        raise StripeDataError("Stripe sent something other than a balance for GET /v1/balance.")
    parts: dict[str, dict[str, int]] = {}
    for part in ("available", "pending", "connect_reserved"):
        for entry in body.get(part) or []:
            if not isinstance(entry, dict):
                raise StripeDataError(f"the balance's {part} holds {entry!r}", field=part)
            try:
                currency = normalize_currency(entry.get("currency"))
            except CurrencyError as exc:
                raise StripeDataError(f"the balance's {part}: {exc}", field=part) from None
            amount = entry.get("amount")
            if isinstance(amount, bool) or not isinstance(amount, int):
                raise StripeDataError(
                    f"the balance's {part} {currency} amount is {amount!r}: expected an integer",
                    field=part,
                )
            sums = parts.setdefault(currency, {})
            sums[part] = sums.get(part, 0) + amount
    return {
        currency: Balance(
            available=p.get("available", 0),
            pending=p.get("pending", 0),
            connect_reserved=p.get("connect_reserved", 0),
        )
        for currency, p in sorted(parts.items())
    }


def _instant(txn: dict, name: str, *, required: bool) -> datetime | None:
    value = txn.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if value is None and not required:
        return None
    raise StripeDataError(
        f"balance transaction {txn['id']!r} has {name} {value!r}: expected epoch seconds",
        field=name,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
