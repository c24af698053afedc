"""Fetching a window's charges through the real SDK from the local Stripe server."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from recon_dagster.core.frames import CHARGES_SCHEMA
from recon_dagster.sources.stripe_api import (
    StripeDataError,
    StripeUnavailableError,
    fetch_charges,
    make_client,
    mask_secrets,
    retrieve_charges,
)
from recon_dagster.testing.stripe_server import DEFAULT_API_KEY, StripeServer, make_charge

START = datetime(2024, 3, 1, tzinfo=timezone.utc)
END = START + timedelta(days=1)
T0 = int(START.timestamp())
SECRET = "sk_test_supersecretkey0000"



def client_for(server: StripeServer, **options):
    return make_client(options.pop("api_key", DEFAULT_API_KEY), api_base=server.url, **options)


def at(moment: datetime) -> int:
    return int(moment.timestamp())


def test_every_page_of_a_window_is_fetched_with_100_charges_per_request(serve):
    server = serve([make_charge(f"ch_{i:03d}", 100 + i, created=T0 + i) for i in range(250)])
    frame = fetch_charges(client_for(server), START, END)
    assert frame.height == 250 and frame["id"].n_unique() == 250
    assert [(r.query["limit"], r.query["created[gte]"], r.query["created[lt]"]) for r in server.requests] == [
        ("100", str(T0), str(at(END)))
    ] * 3


def test_the_frame_has_the_charges_schema_with_upper_case_currency_and_utc_times(serve):
    server = serve([make_charge("ch_1", 1999, currency="usd", created=T0 + 60, customer="cus_1", payment_intent="pi_1")])
    frame = fetch_charges(client_for(server), START, END)
    assert frame.schema == pl.Schema(CHARGES_SCHEMA)
    assert frame.row(0, named=True) == {
        "id": "ch_1", "amount": 1999, "amount_captured": 1999, "amount_refunded": 0, "currency": "USD",
        "status": "succeeded", "paid": True, "captured": True, "refunded": False,
        "created": START + timedelta(seconds=60), "payment_intent": "pi_1", "customer": "cus_1", "disputed": False,
        "dispute_id": None, "dispute_status": None, "dispute_reason": None, "dispute_amount": None,
        "invalid_column": None, "invalid_reason": None,
    }  # fmt: skip


def test_a_charge_at_the_window_start_is_in_and_one_at_its_end_is_out(serve):
    server = serve([make_charge("ch_before", 1, created=T0 - 1), make_charge("ch_start", 1, created=T0),
                    make_charge("ch_last", 1, created=at(END) - 1), make_charge("ch_end", 1, created=at(END))])  # fmt: skip
    assert fetch_charges(client_for(server), START, END)["id"].to_list() == ["ch_last", "ch_start"]


def test_a_window_bound_between_seconds_rounds_up_to_the_next_whole_second(serve):
    server = serve([make_charge("ch_early", 1, created=T0), make_charge("ch_on_time", 1, created=T0 + 1)])
    start = START + timedelta(milliseconds=500)
    assert fetch_charges(client_for(server), start, END)["id"].to_list() == ["ch_on_time"]


def test_the_spring_forward_day_in_new_york_is_a_23_hour_window(serve):
    zone = ZoneInfo("America/New_York")
    start, end = datetime(2024, 3, 10, tzinfo=zone), datetime(2024, 3, 11, tzinfo=zone)
    assert at(end) - at(start) == 23 * 3600
    server = serve([make_charge("ch_midnight", 1, created=at(start)),
                    make_charge("ch_last_second", 1, created=at(datetime(2024, 3, 10, 23, 59, 59, tzinfo=zone))),
                    make_charge("ch_next_midnight", 1, created=at(end))])  # fmt: skip
    assert fetch_charges(client_for(server), start, end)["id"].to_list() == ["ch_last_second", "ch_midnight"]


def test_jpy_amounts_stay_integer_yen(serve):
    server = serve([make_charge("ch_1", 1500, currency="jpy", created=T0, amount_refunded=500)])
    frame = fetch_charges(client_for(server), START, END)
    assert frame.select("amount", "amount_refunded", "currency").row(0) == (1500, 500, "JPY")
    assert frame.schema["amount"] == pl.Int64()


def test_expanded_customer_and_payment_intent_objects_become_their_ids(serve):
    server = serve([make_charge("ch_1", 100, created=T0, customer={"id": "cus_9", "object": "customer"},
                                payment_intent={"id": "pi_9", "object": "payment_intent"})])  # fmt: skip
    frame = fetch_charges(client_for(server), START, END)
    assert frame.select("customer", "payment_intent").row(0) == ("cus_9", "pi_9")


def test_slices_fetch_sub_windows_concurrently_and_give_the_same_frame(serve):
    server = serve([make_charge(f"ch_{i:03d}", i + 1, created=T0 + i * 300) for i in range(280)])
    whole = fetch_charges(client_for(server), START, END)
    server.clear_requests()
    sliced = fetch_charges(client_for(server), START, END, slices=4)
    assert sliced.equals(whole) and whole.height == 280
    lower_bounds = sorted(int(r.query["created[gte]"]) for r in server.requests if "starting_after" not in r.query)
    assert lower_bounds == [T0, T0 + 21600, T0 + 43200, T0 + 64800]


def test_an_empty_window_is_an_empty_frame_without_asking_stripe(serve):
    server = serve([make_charge("ch_1", 100, created=T0)])
    frame = fetch_charges(client_for(server), START, START)
    assert (frame.height, frame.schema, server.count()) == (0, pl.Schema(CHARGES_SCHEMA), 0)


def test_a_window_without_a_time_zone_is_refused(serve):
    with pytest.raises(ValueError, match="no time zone"):
        fetch_charges(client_for(serve()), datetime(2024, 3, 1), datetime(2024, 3, 2))


def test_a_429_is_retried_after_the_retry_after_seconds(serve):
    server = serve([make_charge("ch_1", 100, created=T0)], retry_after=1)
    server.fail_next(429)
    began = time.monotonic()
    frame = fetch_charges(client_for(server), START, END)
    assert time.monotonic() - began >= 1.0  # the SDK's own backoff would wait only 0.5 s
    assert frame["id"].to_list() == ["ch_1"]
    assert [r.status for r in server.requests] == [429, 200]


def test_a_500_is_retried_and_recovers(serve):
    server = serve([make_charge("ch_1", 100, created=T0)])
    server.fail_next(500)
    assert fetch_charges(client_for(server), START, END)["id"].to_list() == ["ch_1"]
    assert [r.status for r in server.requests] == [500, 200]


def test_a_dropped_connection_is_retried_and_recovers(serve):
    server = serve([make_charge("ch_1", 100, created=T0)])
    server.drop_connection_next()
    assert fetch_charges(client_for(server), START, END)["id"].to_list() == ["ch_1"]
    assert [r.status for r in server.requests] == [0, 200]


def test_429_beyond_the_retries_is_unavailable_and_the_message_has_no_key(serve):
    server = serve(api_key=SECRET, retry_after=0)
    server.fail_next(429, count=3)
    with pytest.raises(StripeUnavailableError, match=r"rate limited \(HTTP 429\) after 2 retries") as raised:
        fetch_charges(client_for(server, api_key=SECRET, max_network_retries=2), START, END)
    assert SECRET not in str(raised.value) and "supersecret" not in str(raised.value)
    assert "2024-03-01T00:00:00+00:00" in str(raised.value)
    assert server.count(429) == 3


def test_a_wrong_key_is_unavailable_as_authentication_failed_with_the_key_masked(serve):
    with pytest.raises(StripeUnavailableError, match=r"authentication failed \(HTTP 401\)") as raised:
        fetch_charges(client_for(serve(), api_key=SECRET), START, END)
    assert SECRET not in str(raised.value) and "sk_test_****0000" in str(raised.value)


def test_an_unreachable_stripe_is_unavailable_naming_the_address(serve):
    server = serve()
    server.stop()
    with pytest.raises(StripeUnavailableError, match=f"unreachable at {server.url} after 0 retries"):
        fetch_charges(client_for(server, max_network_retries=0), START, END)


def test_retrieve_returns_known_charges_and_lists_unknown_ids_as_missing(serve):
    server = serve([make_charge("ch_1", 100, created=T0), make_charge("ch_2", 200, created=T0)])
    frame, missing = retrieve_charges(client_for(server), ["ch_2", "ch_gone", "ch_1"])
    assert frame.select("id", "amount").rows() == [("ch_2", 200), ("ch_1", 100)]
    assert missing == ["ch_gone"]


def invalid(frame: pl.DataFrame) -> list[tuple]:
    return frame.filter(pl.col("invalid_reason").is_not_null()).select("id", "invalid_column", "invalid_reason").rows()


def test_a_charge_with_a_null_amount_is_listed_as_invalid_naming_the_charge_and_field(serve):
    server = serve([make_charge("ch_ok", 100, created=T0), make_charge("ch_123", 100, created=T0 + 1) | {"amount": None}])
    frame = fetch_charges(client_for(server), START, END)
    assert invalid(frame) == [
        ("ch_123", "amount", "Stripe charge ch_123: 'amount' is None, expected a non-negative integer number of minor units")
    ]
    assert frame.filter(pl.col("id") == "ch_ok")["amount"].to_list() == [100]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"amount": True}, "amount"),
        ({"amount": 12.5}, "amount"),
        ({"amount_refunded": -1}, "amount_refunded"),
        ({"amount_refunded": 101}, "amount_refunded"),
        ({"amount_captured": 101}, "amount_captured"),
        ({"currency": "us"}, "currency"),
        ({"currency": "xyz"}, "currency"),
        ({"disputed": "yes"}, "disputed"),
        ({"created": None}, "created"),
        ({"status": None}, "status"),
    ],
)
def test_a_malformed_field_is_listed_as_invalid_naming_that_field(serve, override, field):
    server = serve([make_charge("ch_bad", 100, created=T0) | override])
    since_epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)  # the server files a charge without `created` at 0
    [(cid, column, reason)] = invalid(fetch_charges(client_for(server), since_epoch, END))
    assert (cid, column) == ("ch_bad", field) and reason.startswith(f"Stripe charge ch_bad: '{field}' is ")


def test_a_charge_without_an_id_is_named_by_its_position(serve):
    charge = make_charge("ch_x", 100, created=T0)
    del charge["id"]
    server = serve([make_charge("ch_newer", 100, created=T0 + 1), charge])
    frame = fetch_charges(client_for(server), START, END)
    [(cid, column, reason)] = invalid(frame)
    assert (cid, column) == (None, "id") and reason.startswith("Stripe charge at position 1: 'id' is missing")
    assert frame.filter(pl.col("invalid_reason").is_null())["id"].to_list() == ["ch_newer"]


def test_the_rate_limiter_spaces_requests_at_the_configured_rate(serve):
    server = serve([make_charge(f"ch_{i}", 100, created=T0) for i in range(20)])
    began = time.monotonic()
    frame, _ = retrieve_charges(client_for(server, requests_per_second=50), [f"ch_{i}" for i in range(20)])
    elapsed = time.monotonic() - began
    assert frame.height == 20
    assert 19 / 50 - 0.02 <= elapsed < 2.0  # 20 evenly spaced requests span 19 intervals of 20 ms


def test_mask_secrets_keeps_only_the_prefix_and_last_four_characters():
    assert mask_secrets(f"key {SECRET} and rk_live_abcdefgh1234.") == "key sk_test_****0000 and rk_live_****1234."


# --- automatic slicing, pacing and 429 recovery at the rate limit -----------------------------------


def busy_day(count: int) -> list[dict]:
    """`count` charges, a quiet night and a busy afternoon, a few sharing a second."""
    return [make_charge(f"ch_{i:05d}", 100 + i, created=T0 + (i * 7919) % 86_400 // (1 if i % 3 else 4)) for i in range(count)]


def test_automatic_slices_give_the_same_frame_as_sequential_under_a_rate_limit(serve):
    server = serve(busy_day(3_000), rate_limit=100, latency=0.01)
    sequential = fetch_charges(client_for(server, requests_per_second=90), START, END)
    server.clear_requests()
    automatic = fetch_charges(client_for(server, requests_per_second=90), START, END, slices=None)
    assert automatic.equals(sequential) and sequential.height == 3_000
    lists = [r for r in server.requests if r.path == "/v1/charges"]
    assert len({r.query["created[gte]"] for r in lists}) > 1  # it did split the day
    assert len(lists) <= 30 + 16  # 30 full pages plus at most one partial page per sub-window
    assert server.count(429) == 0


def test_automatic_slices_of_a_small_window_cost_one_request(serve):
    server = serve([make_charge(f"ch_{i}", 100, created=T0 + i) for i in range(40)])
    assert fetch_charges(client_for(server), START, END, slices=None).height == 40
    assert server.count() == 1


def test_fixed_slices_under_a_rate_limit_give_the_same_frame_as_sequential(serve):
    server = serve(busy_day(1_500), rate_limit=100)
    sequential = fetch_charges(client_for(server, requests_per_second=90), START, END)
    sliced = fetch_charges(client_for(server, requests_per_second=90), START, END, slices=8)
    assert sliced.equals(sequential) and server.count(429) == 0


def test_a_90_rps_client_never_trips_a_100_rps_limit_with_many_threads(serve):
    server = serve(busy_day(20_000), rate_limit=100, latency=0.02)
    began = time.monotonic()
    frame = fetch_charges(client_for(server, requests_per_second=90), START, END, slices=None, max_workers=16)
    elapsed = time.monotonic() - began
    # No 429 reached us; the server (in this process, so sharing our GIL) may have sent one or two.
    assert frame.height == 20_000 and server.count(429) <= 2
    assert server.count(200) / elapsed <= 92


def test_the_pacer_is_shared_by_every_thread_of_a_client(serve):
    server = serve([make_charge(f"ch_{i}", 100, created=T0) for i in range(40)])
    client = client_for(server, requests_per_second=40)
    began = time.monotonic()
    frame, _ = retrieve_charges(client, [f"ch_{i}" for i in range(40)], max_workers=16)
    assert frame.height == 40 and time.monotonic() - began >= 39 / 40 - 0.02


def test_a_burst_lets_a_paced_client_catch_up_but_never_beyond_the_burst(serve):
    server = serve([make_charge(f"ch_{i}", 100, created=T0) for i in range(20)])
    began = time.monotonic()
    retrieve_charges(client_for(server, requests_per_second=50, burst=5), [f"ch_{i}" for i in range(20)])
    assert 15 / 50 - 0.02 <= time.monotonic() - began < 19 / 50  # 4 requests early, then 20 ms apart
    with pytest.raises(ValueError, match="burst"):
        client_for(server, burst=0)


def test_a_429_burst_with_retry_after_is_recovered_by_concurrent_slices(serve):
    server = serve(busy_day(2_000), retry_after=1)
    expected = fetch_charges(client_for(server), START, END)
    server.clear_requests()
    server.fail_next(429, count=6)  # most likely the first request of each of the six slices
    began = time.monotonic()
    frame = fetch_charges(client_for(server, requests_per_second=90), START, END, slices=6)
    assert frame.equals(expected)
    assert server.count(429) == 6 and time.monotonic() - began >= 1.0  # Retry-After honoured


def test_an_invalid_charge_in_one_slice_is_listed_and_every_other_charge_is_read(serve):
    charges = busy_day(2_000)
    charges[1_234] = charges[1_234] | {"amount": -5}
    server = serve(charges)
    frame = fetch_charges(client_for(server), START, END, slices=None)
    assert frame.height == 2_000 and [row[0] for row in invalid(frame)] == [charges[1_234]["id"]]


def test_an_error_in_one_slice_stops_the_others_and_reaches_the_caller(serve):
    server = serve(busy_day(2_000))
    server.fail_next(500, count=1_000)
    with pytest.raises(StripeUnavailableError, match="server error"):
        fetch_charges(client_for(server, max_network_retries=0), START, END, slices=None)
    with pytest.raises(ValueError, match="slices must be at least 1 or None"):
        fetch_charges(client_for(server), START, END, slices=0)
