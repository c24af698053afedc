"""Stripe payouts by arrival date, and the balance transactions each automatic payout paid out.

Through the official SDK and the same paced, retrying client as the charges (`stripe_client`).
Stripe gives `arrival_date` as a timestamp at midnight UTC of the date the bank should have the
money, so a day's payouts are those whose arrival_date falls on that UTC date: the day is the
date itself, not a window of RECON_TIMEZONE. A payout's transactions are listed with
`payout=po_…` and `expand[]=data.source`, which brings each charge's PaymentIntent along (the
payments table may keep either id), a page of 100 per request, payouts in parallel.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import polars as pl
import stripe

from recon_dagster.core.payout_frames import PAYOUT_TRANSACTIONS_SCHEMA, PAYOUTS_SCHEMA
from recon_dagster.money import CurrencyError, normalize_currency
from recon_dagster.sources.stripe_client import StripeDataError, call, list_all, run_all
from recon_dagster.sources.stripe_connect import (
    field_of,
    id_of,
    is_destination_charge,
    is_transfer_payment,
)

_CHARGE_CATEGORIES = ("charge",)
# Which side of a Stripe Connect platform an account is (None: no Connect).
ConnectRole = Literal["platform", "connected"] | None


def fetch_payouts(client: stripe.StripeClient, first: date, last: date) -> pl.DataFrame:
    """Payouts arriving from `first` to `last` (inclusive dates), as `PAYOUTS_SCHEMA`."""
    low = int(datetime.combine(first, time(0), tzinfo=UTC).timestamp())
    high = int(datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC).timestamp())
    context = f"listing payouts arriving {first.isoformat()} to {last.isoformat()}"
    rows = [
        payout_row(p)
        for p in _list(client, "/v1/payouts", {"arrival_date": {"gte": low, "lt": high}}, context)
    ]
    return pl.DataFrame(rows, schema=PAYOUTS_SCHEMA, orient="row")


def fetch_payout_transactions(
    client: stripe.StripeClient,
    payout_ids: list[str],
    *,
    max_workers: int = 8,
    connect: ConnectRole = None,
) -> pl.DataFrame:
    """The balance transactions of these payouts (each payout's own included), as
    `PAYOUT_TRANSACTIONS_SCHEMA`. Under Stripe Connect (`stripe_connect`) a sale is its
    destination account's: on the `platform`, a destination charge is not the platform's sale;
    on a `connected` account, each payment a transfer made is read back to the platform's charge
    behind it, the id the payments table holds."""
    expand = ["data.source"]
    if connect == "connected":
        expand.append("data.source.source_transfer.source_transaction")  # Stripe's deepest: 4

    def one(payout: str) -> list[tuple]:
        params = {"payout": payout, "expand": expand}
        return [
            transaction_row(t, payout, connect)
            for t in _list(
                client,
                "/v1/balance_transactions",
                params,
                f"listing the balance transactions of payout {payout}",
            )
        ]

    rows = [
        row for rows in run_all(one, list(dict.fromkeys(payout_ids)), max_workers) for row in rows
    ]
    return pl.DataFrame(rows, schema=PAYOUT_TRANSACTIONS_SCHEMA, orient="row")


def retrieve_payouts(
    client: stripe.StripeClient, ids: list[str], *, max_workers: int = 8
) -> tuple[pl.DataFrame, list[str]]:
    """The payouts with these ids, as `PAYOUTS_SCHEMA`, and the ids Stripe does not know (404)."""
    wanted = list(dict.fromkeys(ids))

    def one(pid: str) -> dict | None:
        found = call(
            f"retrieving payout {pid}",
            lambda: client.raw_request("get", f"/v1/payouts/{pid}"),
            missing_ok=True,
        )
        return None if found is None else found.data

    found = run_all(one, wanted, max_workers)
    rows = [payout_row(p) for p in found if p is not None]
    return pl.DataFrame(rows, schema=PAYOUTS_SCHEMA, orient="row"), [
        pid for pid, p in zip(wanted, found, strict=True) if p is None
    ]


def _list(
    client: stripe.StripeClient, path: str, params: dict[str, Any], context: str
) -> list[dict]:
    """Every object of a list endpoint; an object without an id is refused."""
    objects = list_all(client, path, params, context)
    if any(not isinstance(o, dict) or not isinstance(o.get("id"), str) for o in objects):
        raise StripeDataError(f"Stripe sent an object without an id while {context}.")
    return objects


def _integer(obj: dict, name: str, what: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StripeDataError(
            f"{what} {obj.get('id')!r} has {name} {value!r}: expected an integer", field=name
        )
    return value


def _currency(obj: dict, what: str) -> str:
    try:
        return normalize_currency(obj.get("currency"))
    except CurrencyError:
        raise StripeDataError(
            f"{what} {obj.get('id')!r} has currency {obj.get('currency')!r}", field="currency"
        ) from None


def _transferred_sale(payment: dict) -> tuple[str | None, str | None] | None:
    """For a connected account's payment made by a platform transfer (`source_transfer`, expanded
    to its `source_transaction`): the platform charge's id and PaymentIntent when it is a
    destination charge, (None, None) for a separate transfer (no sale of the account's); None for
    any other source."""
    if not is_transfer_payment(payment):
        return None
    charge = field_of(payment.get("source_transfer"), "source_transaction")
    if not is_destination_charge(charge):
        return None, None
    return id_of(charge), id_of(field_of(charge, "payment_intent"))


def payout_row(payout: dict) -> tuple:
    trace = payout.get("trace_id")
    trace_value = (
        trace.get("value") if isinstance(trace, dict) else trace if isinstance(trace, str) else None
    )
    arrival = datetime.fromtimestamp(_integer(payout, "arrival_date", "Payout"), UTC).date()
    created = datetime.fromtimestamp(_integer(payout, "created", "Payout"), UTC)
    return (
        payout["id"],
        _integer(payout, "amount", "Payout"),
        _currency(payout, "Payout"),
        arrival,
        payout.get("status"),
        bool(payout.get("automatic")),
        payout.get("failure_code"),
        trace_value,
        created,
    )


def transaction_row(txn: dict, payout: str, connect: ConnectRole = None) -> tuple:
    source = txn.get("source")
    intent = sale = None
    if isinstance(source, dict):  # expanded: the charge object (or another source object)
        intent = source.get("payment_intent") if source.get("object") == "charge" else None
        intent = intent.get("id") if isinstance(intent, dict) else intent
        if connect == "connected":
            sale = _transferred_sale(source)
        elif connect == "platform" and is_destination_charge(source):
            sale = None, None  # its destination account's sale, checked there
        source = source.get("id")
    category = txn.get("reporting_category") or txn.get("type")
    charge = source if category in _CHARGE_CATEGORIES and isinstance(source, str) else None
    if charge is not None and sale is not None:
        charge, intent = sale  # a destination charge's payment: the sale is the platform's charge
    created = datetime.fromtimestamp(_integer(txn, "created", "Balance transaction"), UTC)
    return (
        txn["id"],
        payout,
        _integer(txn, "amount", "Balance transaction"),
        _integer(txn, "fee", "Balance transaction"),
        _integer(txn, "net", "Balance transaction"),
        _currency(txn, "Balance transaction"),
        txn.get("type"),
        category,
        source,
        charge,
        intent,
        created,
    )
