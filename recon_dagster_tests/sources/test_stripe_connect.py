"""Whose sale a charge is under Stripe Connect, read through the real SDK from the local server:
a connected account's destination charges come from the platform's transfers to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recon_dagster.sources.stripe_api import ConnectSide, StripeApi
from recon_dagster.sources.stripe_client import make_client
from recon_dagster.sources.stripe_connect import destination_charges
from recon_dagster.testing.connect_money import destination_charge, direct_charge
from recon_dagster.testing.stripe_server import DEFAULT_API_KEY, StripeServer, make_charge

START = datetime(2024, 3, 1, tzinfo=UTC)
END = START + timedelta(days=1)
NOON = int((START + timedelta(hours=12)).timestamp())
A, B = "acct_1A", "acct_2B"


def platform_with_sales() -> StripeServer:
    server = StripeServer([make_charge("ch_own", 900, created=NOON)])
    for account in (A, B):
        server.add_connected_account(account)
    server.add_sale(destination_charge("ch_to_a", 1_000, A, created=NOON, application_fee=100), A)
    server.add_sale(destination_charge("ch_to_b", 2_000, B, created=NOON), B)
    # Created the day before, its transfer (at capture) inside the window: not this day's sale.
    earlier = destination_charge("ch_yday", 3_000, A, created=NOON - 86_400)
    earlier.transfers[0]["created"] = NOON
    server.add_sale(earlier, A)
    server.connected_account(A).add_charges(
        direct_charge("ch_direct", 500, created=NOON, application_fee=50).account_charges
    )
    return server


def api(server: StripeServer, account: str | None) -> StripeApi:
    platform = make_client(DEFAULT_API_KEY, api_base=server.url)
    if account is None:
        return StripeApi(platform, connect=ConnectSide(platform))
    client = make_client(DEFAULT_API_KEY, api_base=server.url, stripe_account=account)
    return StripeApi(client, connect=ConnectSide(platform, destination=account))


def test_a_destination_charge_is_read_for_its_destination_account_and_day_only():
    with platform_with_sales() as server:
        platform = make_client(DEFAULT_API_KEY, api_base=server.url)
        frame = destination_charges(platform, A, START, END)
    assert frame.select("id", "amount").rows() == [("ch_to_a", 1_000)]


def test_a_connected_accounts_day_is_its_direct_charges_and_its_destination_charges():
    with platform_with_sales() as server:
        frame = api(server, A).fetch_charges(START, END)
    # Not py_to_a: the payment the transfer made is the destination charge's, read as ch_to_a.
    assert sorted(frame["id"]) == ["ch_direct", "ch_to_a"]


def test_the_platforms_day_leaves_its_destination_charges_to_their_accounts():
    with platform_with_sales() as server:
        frame = api(server, None).fetch_charges(START, END)
    assert sorted(frame["id"]) == ["ch_own"]


def test_a_destination_charge_is_found_by_id_for_its_account_and_not_for_another():
    with platform_with_sales() as server:
        _, missing_for_b = api(server, B).retrieve_charges(["ch_to_a"])
        found, missing_for_a = api(server, A).retrieve_charges(["ch_to_a"])
    assert (list(found["id"]), missing_for_a, missing_for_b) == (["ch_to_a"], [], ["ch_to_a"])


def test_a_destination_charge_without_a_usable_amount_is_kept_as_invalid_and_named():
    with platform_with_sales() as server:
        broken = destination_charge("ch_bad", 700, A, created=NOON)
        broken.platform_charges[0]["amount"] = None
        server.add_sale(broken, A)
        frame = api(server, A).fetch_charges(START, END)
    bad = frame.filter(frame["id"] == "ch_bad")
    assert bad["invalid_column"].to_list() == ["amount"]
