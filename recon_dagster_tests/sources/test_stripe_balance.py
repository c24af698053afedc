"""Reading balance transactions by day and the balance itself through the real SDK from the
local Stripe server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recon_dagster.sources.stripe_balance import fetch_balance, fetch_balance_transactions
from recon_dagster.sources.stripe_client import StripeDataError, make_client
from recon_dagster.testing.stripe_server import (
    DEFAULT_API_KEY,
    StripeServer,
    make_balance_transaction,
)

START = datetime(2026, 11, 3, tzinfo=UTC)
END = START + timedelta(days=1)
T0 = int(START.timestamp())


def client_for(server: StripeServer):
    return make_client(DEFAULT_API_KEY, api_base=server.url)


def test_every_transaction_created_in_the_window_is_read_once_and_no_other(serve):
    inside = [
        make_balance_transaction(f"txn_{i}", 100 + i, created=T0 + i * 700) for i in range(120)
    ]
    outside = [
        make_balance_transaction("txn_before", 1, created=T0 - 1),
        make_balance_transaction("txn_after", 1, created=T0 + 86_400),
    ]
    server = serve(balance_transactions=inside + outside)

    frame = fetch_balance_transactions(client_for(server), START, END)

    assert frame["id"].to_list() == [t["id"] for t in inside]
    assert frame["net"].sum() == sum(t["net"] for t in inside)


def test_a_non_integer_amount_is_kept_named_not_summed(serve):
    bad = make_balance_transaction("txn_bad", 100, created=T0 + 5)
    bad["amount"] = "12.50"
    server = serve(balance_transactions=[bad, make_balance_transaction("txn_ok", 7, created=T0)])

    frame = fetch_balance_transactions(client_for(server), START, END)

    [row] = frame.filter(frame["id"] == "txn_bad").to_dicts()
    assert (row["amount"], row["invalid_column"]) == (None, "amount")
    assert row["invalid_reason"] == (
        "balance transaction txn_bad: amount '12.50' is not an integer of minor units"
    )


def test_a_transaction_without_an_id_fails_the_read_saying_so(serve):
    nameless = make_balance_transaction("txn_x", 100, created=T0)
    del nameless["id"]
    server = serve(balance_transactions=[nameless])

    with pytest.raises(StripeDataError, match="without an id"):
        fetch_balance_transactions(client_for(server), START, END)


def test_the_balance_is_available_plus_pending_plus_connect_reserved_per_currency(serve):
    now = int(datetime.now(UTC).timestamp())
    server = serve(
        balance_transactions=[
            make_balance_transaction("txn_1", 1_000, fee=59, created=now - 9, available_on=now - 5),
            make_balance_transaction("txn_2", 500, created=now - 9, available_on=now + 86_400),
            make_balance_transaction("txn_3", 300, currency="jpy", created=now - 9),
        ]
    )
    server.connect_reserved = {"usd": 25}

    balance = fetch_balance(client_for(server))

    usd, jpy = balance["USD"], balance["JPY"]
    assert (usd.available, usd.pending, usd.connect_reserved, usd.total) == (941, 500, 25, 1_466)
    assert (jpy.available, jpy.pending, jpy.total) == (300, 0, 300)
