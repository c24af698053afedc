"""Fetching a window's charges through the real SDK from the local Stripe server."""

from __future__ import annotations

import time
from bisect import bisect_left
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from recon_dagster.core.frames import CHARGES_SCHEMA
from recon_dagster.settings import ConfigError, Settings
from recon_dagster.sources import stripe_charges, stripe_pacing
from recon_dagster.sources.stripe_charges import charges_of_intents, fetch_charges, retrieve_charges
from recon_dagster.sources.stripe_client import StripeUnavailableError, make_client, mask_secrets
from recon_dagster.sources.stripe_pacing import Pacer, endpoint
from recon_dagster.testing.stripe_server import (
    DEFAULT_API_KEY,
    StripeServer,
    make_balance_transaction,
    make_charge,
    make_dispute,
    make_payout,
)

START = datetime(2024, 3, 1, tzinfo=UTC)
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
    assert [
        (r.query["limit"], r.query["created[gte]"], r.query["created[lt]"]) for r in server.requests
    ] == [("100", str(T0), str(at(END)))] * 3


def test_the_frame_has_the_charges_schema_with_upper_case_currency_and_utc_times(serve):
    server = serve(
        [
            make_charge(
                "ch_1",
                1999,
                currency="usd",
                created=T0 + 60,
                customer="cus_1",
                payment_intent="pi_1",
            )
        ]
    )
    frame = fetch_charges(client_for(server), START, END)
    assert frame.schema == pl.Schema(CHARGES_SCHEMA)
    assert frame.row(0, named=True) == {
        "id": "ch_1",
        "amount": 1999,
        "amount_captured": 1999,
        "amount_refunded": 0,
        "currency": "USD",
        "status": "succeeded",
        "paid": True,
        "captured": True,
        "refunded": False,
        "created": START + timedelta(seconds=60),
        "payment_intent": "pi_1",
        "customer": "cus_1",
        "disputed": False,
        "dispute_id": None,
        "dispute_status": None,
        "dispute_reason": None,
        "dispute_amount": None,
        "invalid_column": None,
        "invalid_reason": None,
    }


def test_a_charge_at_the_window_start_is_in_and_one_at_its_end_is_out(serve):
    server = serve(
        [
            make_charge("ch_before", 1, created=T0 - 1),
            make_charge("ch_start", 1, created=T0),
            make_charge("ch_last", 1, created=at(END) - 1),
            make_charge("ch_end", 1, created=at(END)),
        ]
    )
    assert fetch_charges(client_for(server), START, END)["id"].to_list() == ["ch_last", "ch_start"]


def test_a_window_bound_between_seconds_rounds_up_to_the_next_whole_second(serve):
    server = serve(
        [make_charge("ch_early", 1, created=T0), make_charge("ch_on_time", 1, created=T0 + 1)]
    )
    start = START + timedelta(milliseconds=500)
    assert fetch_charges(client_for(server), start, END)["id"].to_list() == ["ch_on_time"]


def test_the_spring_forward_day_in_new_york_is_a_23_hour_window(serve):
    zone = ZoneInfo("America/New_York")
    start, end = datetime(2024, 3, 10, tzinfo=zone), datetime(2024, 3, 11, tzinfo=zone)
    assert at(end) - at(start) == 23 * 3600
    server = serve(
        [
            make_charge("ch_midnight", 1, created=at(start)),
            make_charge(
                "ch_last_second", 1, created=at(datetime(2024, 3, 10, 23, 59, 59, tzinfo=zone))
            ),
            make_charge("ch_next_midnight", 1, created=at(end)),
        ]
    )
    assert fetch_charges(client_for(server), start, end)["id"].to_list() == [
        "ch_last_second",
        "ch_midnight",
    ]


def test_jpy_amounts_stay_integer_yen(serve):
    server = serve([make_charge("ch_1", 1500, currency="jpy", created=T0, amount_refunded=500)])
    frame = fetch_charges(client_for(server), START, END)
    assert frame.select("amount", "amount_refunded", "currency").row(0) == (1500, 500, "JPY")
    assert frame.schema["amount"] == pl.Int64()


def test_expanded_customer_and_payment_intent_objects_become_their_ids(serve):
    server = serve(
        [
            make_charge(
                "ch_1",
                100,
                created=T0,
                customer={"id": "cus_9", "object": "customer"},
                payment_intent={"id": "pi_9", "object": "payment_intent"},
            )
        ]
    )
    frame = fetch_charges(client_for(server), START, END)
    assert frame.select("customer", "payment_intent").row(0) == ("cus_9", "pi_9")


def test_slices_fetch_sub_windows_concurrently_and_give_the_same_frame(serve):
    server = serve([make_charge(f"ch_{i:03d}", i + 1, created=T0 + i * 300) for i in range(280)])
    whole = fetch_charges(client_for(server), START, END)
    server.clear_requests()
    sliced = fetch_charges(client_for(server), START, END, slices=4)
    assert sliced.equals(whole) and whole.height == 280
    lower_bounds = sorted(
        int(r.query["created[gte]"]) for r in server.requests if "starting_after" not in r.query
    )
    assert lower_bounds == [T0, T0 + 21600, T0 + 43200, T0 + 64800]


def test_charges_kept_in_many_batches_come_back_whole_and_newest_first(serve, monkeypatch):
    """A pagination keeps its charges as frames of `BATCH_ROWS` rows; however many batches and
    sub-windows, the day comes back once each, newest first (ties by id)."""
    charges = [make_charge(f"ch_{i:03d}", i + 1, created=T0 + (i // 3) * 300) for i in range(280)]
    server = serve(charges)
    monkeypatch.setattr(stripe_charges, "BATCH_ROWS", 7)

    for slices in (1, 4, None):
        frame = fetch_charges(client_for(server), START, END, slices=slices)
        expected = sorted(((c["created"], c["id"]) for c in charges), reverse=True)
        got = list(
            zip(frame["created"].dt.epoch("s").to_list(), frame["id"].to_list(), strict=True)
        )
        assert got == expected


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
    with pytest.raises(
        StripeUnavailableError, match=r"rate limited \(HTTP 429\) after 2 retries"
    ) as raised:
        fetch_charges(client_for(server, api_key=SECRET, max_network_retries=2), START, END)
    assert SECRET not in str(raised.value) and "supersecret" not in str(raised.value)
    assert "2024-03-01T00:00:00+00:00" in str(raised.value)
    assert server.count(429) == 3


def test_a_wrong_key_is_unavailable_as_authentication_failed_with_the_key_masked(serve):
    with pytest.raises(
        StripeUnavailableError, match=r"authentication failed \(HTTP 401\)"
    ) as raised:
        fetch_charges(client_for(serve(), api_key=SECRET), START, END)
    assert SECRET not in str(raised.value) and "sk_test_****0000" in str(raised.value)


def test_an_unreachable_stripe_is_unavailable_naming_the_address(serve):
    server = serve()
    server.stop()
    with pytest.raises(
        StripeUnavailableError, match=f"unreachable at {server.url} after 0 retries"
    ):
        fetch_charges(client_for(server, max_network_retries=0), START, END)


def test_retrieve_returns_known_charges_and_lists_unknown_ids_as_missing(serve):
    server = serve([make_charge("ch_1", 100, created=T0), make_charge("ch_2", 200, created=T0)])
    frame, missing = retrieve_charges(client_for(server), ["ch_2", "ch_gone", "ch_1"])
    assert frame.select("id", "amount").rows() == [("ch_2", 200), ("ch_1", 100)]
    assert missing == ["ch_gone"]


def invalid(frame: pl.DataFrame) -> list[tuple]:
    return (
        frame.filter(pl.col("invalid_reason").is_not_null())
        .select("id", "invalid_column", "invalid_reason")
        .rows()
    )


def test_a_charge_with_a_null_amount_is_listed_as_invalid_naming_the_charge_and_field(serve):
    server = serve(
        [
            make_charge("ch_ok", 100, created=T0),
            make_charge("ch_123", 100, created=T0 + 1) | {"amount": None},
        ]
    )
    frame = fetch_charges(client_for(server), START, END)
    assert invalid(frame) == [
        (
            "ch_123",
            "amount",
            "Stripe charge ch_123: 'amount' is None, expected a non-negative integer number of "
            "minor units",
        )
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
    since_epoch = datetime(
        1970, 1, 1, tzinfo=UTC
    )  # the server files a charge without `created` at 0
    [(cid, column, reason)] = invalid(fetch_charges(client_for(server), since_epoch, END))
    assert (cid, column) == ("ch_bad", field) and reason.startswith(
        f"Stripe charge ch_bad: '{field}' is "
    )


def test_a_charge_without_an_id_is_named_by_its_position(serve):
    charge = make_charge("ch_x", 100, created=T0)
    del charge["id"]
    server = serve([make_charge("ch_newer", 100, created=T0 + 1), charge])
    frame = fetch_charges(client_for(server), START, END)
    [(cid, column, reason)] = invalid(frame)
    assert (cid, column) == (None, "id") and reason.startswith(
        "Stripe charge at position 1: 'id' is missing"
    )
    assert frame.filter(pl.col("invalid_reason").is_null())["id"].to_list() == ["ch_newer"]


def test_the_rate_limiter_spaces_requests_at_95_percent_of_the_budget(serve):
    server = serve([make_charge(f"ch_{i}", 100, created=T0) for i in range(20)])
    began = time.monotonic()
    client = client_for(server, requests_per_second=50, endpoint_requests_per_second=50)
    frame, _ = retrieve_charges(client, [f"ch_{i}" for i in range(20)])
    elapsed = time.monotonic() - began
    assert frame.height == 20
    assert (
        19 / 47.5 - 0.02 <= elapsed < 2.0
    )  # 20 evenly spaced requests span 19 intervals of 1/47.5 s


def test_mask_secrets_keeps_only_the_prefix_and_last_four_characters():
    assert (
        mask_secrets(f"key {SECRET} and rk_live_abcdefgh1234.")
        == "key sk_test_****0000 and rk_live_****1234."
    )


# --- automatic slicing, pacing and 429 recovery at the rate limit
# -----------------------------------


def busy_day(count: int) -> list[dict]:
    """`count` charges, a quiet night and a busy afternoon, a few sharing a second."""
    return [
        make_charge(f"ch_{i:05d}", 100 + i, created=T0 + (i * 7919) % 86_400 // (1 if i % 3 else 4))
        for i in range(count)
    ]


def test_automatic_slices_give_the_same_frame_as_sequential_under_a_rate_limit(serve):
    server = serve(busy_day(3_000), rate_limit=100, endpoint_rate_limit=100, latency=0.01)
    sequential = fetch_charges(
        client_for(server, requests_per_second=100, endpoint_requests_per_second=100), START, END
    )
    server.clear_requests()
    automatic = fetch_charges(
        client_for(server, requests_per_second=100, endpoint_requests_per_second=100),
        START,
        END,
        slices=None,
    )
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
    server = serve(busy_day(1_500), rate_limit=100, endpoint_rate_limit=100)
    client = client_for(server, requests_per_second=100, endpoint_requests_per_second=100)
    sequential = fetch_charges(client, START, END)
    sliced = fetch_charges(client, START, END, slices=8)
    assert sliced.equals(sequential) and server.count(429) == 0


def test_many_threads_never_push_a_client_past_its_budgets(serve):
    server = serve(busy_day(10_000), rate_limit=100, endpoint_rate_limit=50, latency=0.02)
    began = time.monotonic()
    client = client_for(server, requests_per_second=90, endpoint_requests_per_second=45)
    frame = fetch_charges(client, START, END, slices=None, max_workers=16)
    elapsed = time.monotonic() - began
    # No 429 reached us; the server (in this process, so sharing our GIL) may have sent one or two.
    assert frame.height == 10_000 and server.count(429) <= 2
    assert server.count(200) / elapsed <= 44  # aimed at 95% of the endpoint's 45/s: 42.75


def test_the_pacer_is_shared_by_every_thread_of_a_client(serve):
    server = serve([make_charge(f"ch_{i}", 100, created=T0) for i in range(40)])
    client = client_for(server, requests_per_second=40, endpoint_requests_per_second=40)
    began = time.monotonic()
    frame, _ = retrieve_charges(client, [f"ch_{i}" for i in range(40)], max_workers=16)
    assert frame.height == 40 and time.monotonic() - began >= 39 / 38 - 0.02


class _Clock:
    """The pacer's clock, moved only by its own sleeps: a loaded machine cannot stretch it."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _last_send(monkeypatch, burst: int, requests: int = 20) -> float:
    """When the last of `requests` back-to-back retrievals goes under a 50/s pacer."""
    clock = _Clock()
    monkeypatch.setattr(stripe_pacing, "time", clock)
    pacer = Pacer(50, 50, burst)
    for i in range(requests):
        pacer.wait("get", f"https://api.stripe.com/v1/charges/ch_{i}")
    return clock.now


def test_a_burst_lets_requests_catch_up_by_that_many_slots_and_no_more(monkeypatch):
    # 20 requests 1/47.5 s apart take 19 slots; a burst of 5 lets 4 of them go early.
    assert _last_send(monkeypatch, burst=1) == pytest.approx(19 / 47.5)
    assert _last_send(monkeypatch, burst=5) == pytest.approx(15 / 47.5)


def test_a_client_with_a_burst_never_goes_beyond_it(serve):
    server = serve([make_charge(f"ch_{i}", 100, created=T0) for i in range(20)])
    began = time.monotonic()
    client = client_for(server, requests_per_second=50, endpoint_requests_per_second=50, burst=5)
    retrieve_charges(client, [f"ch_{i}" for i in range(20)])
    assert time.monotonic() - began >= 15 / 47.5 - 0.02  # 4 requests early, then 1/47.5 s apart
    with pytest.raises(ValueError, match="burst"):
        client_for(server, burst=0)


def test_a_429_burst_with_retry_after_is_recovered_by_concurrent_slices(serve):
    server = serve(busy_day(2_000), retry_after=1)
    expected = fetch_charges(client_for(server), START, END)
    server.clear_requests()
    server.fail_next(429, count=6)  # most likely the first request of each of the six slices
    began = time.monotonic()
    frame = fetch_charges(
        client_for(server, requests_per_second=100, endpoint_requests_per_second=100),
        START,
        END,
        slices=6,
    )
    assert frame.equals(expected)
    assert server.count(429) == 6 and time.monotonic() - began >= 1.0  # Retry-After honoured


def test_an_invalid_charge_in_one_slice_is_listed_and_every_other_charge_is_read(serve):
    charges = busy_day(2_000)
    charges[1_234] = charges[1_234] | {"amount": -5}
    server = serve(charges)
    frame = fetch_charges(client_for(server), START, END, slices=None)
    assert frame.height == 2_000 and [row[0] for row in invalid(frame)] == [charges[1_234]["id"]]


@pytest.mark.parametrize("kind", ["truncated", "reset", "html", "slow"])
def test_one_garbled_page_is_read_again_and_every_charge_arrives(serve, kind):
    server = serve([make_charge(f"ch_{i:03d}", 100 + i, created=T0 + i) for i in range(250)])
    server.slow_seconds = 1.5
    server.garble_next(kind)
    frame = fetch_charges(client_for(server, timeout=0.5), START, END)
    assert frame.height == 250 and frame["id"].n_unique() == 250
    assert server.clear_faults() == 0


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("truncated", "sent an unreadable response (HTTP 200) after 0 retries while listing"),
        ("html", "sent an unreadable response (HTTP 502) after 2 retries while listing"),
        ("reset", "unreachable at http://127.0.0.1"),
    ],
)
def test_a_page_garbled_every_time_fails_naming_the_request_and_not_quoting_it(serve, kind, says):
    server = serve([make_charge(f"ch_{i:03d}", 100 + i, created=T0 + i) for i in range(250)])
    server.garble_next(kind, count=20)
    with pytest.raises(StripeUnavailableError) as failed:
        fetch_charges(client_for(server, max_network_retries=2), START, END, slices=None)
    message = str(failed.value)
    assert says in message and "charges created in [2024-03-01" in message
    assert "ch_00" not in message.split("from")[0] and len(message) < 500


def test_an_error_in_one_slice_stops_the_others_and_reaches_the_caller(serve):
    server = serve(busy_day(2_000))
    server.fail_next(500, count=1_000)
    with pytest.raises(StripeUnavailableError, match="server error"):
        fetch_charges(client_for(server, max_network_retries=0), START, END, slices=None)
    with pytest.raises(ValueError, match="slices must be at least 1 or None"):
        fetch_charges(client_for(server), START, END, slices=0)


# --- Stripe's two budgets: each endpoint's and the account's
# -----------------------------------------

LIVE_KEY = (
    "sk_live_recon_local_0000"  # a fake live-mode key: the server accepts whatever key it is given
)


def busiest_second(records) -> int:
    """The most requests in any one-second window of the server's records."""
    times = sorted(r.timestamp for r in records)
    return max((bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def concurrently(*jobs) -> None:
    """Run each job in its own thread; re-raise the first error."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def test_an_endpoint_is_its_method_and_path_with_ids_replaced():
    assert (
        endpoint("get", "https://api.stripe.com/v1/charges/ch_3MmlLrLkdIwHu7ix")
        == "GET /v1/charges/{id}"
    )
    assert (
        endpoint("get", "http://127.0.0.1:1/v1/payment_intents/pi_1?expand[]=x")
        == "GET /v1/payment_intents/{id}"
    )
    assert (
        endpoint("get", "https://api.stripe.com/v1/charges?created[gte]=1&limit=100")
        == "GET /v1/charges"
    )
    assert (
        endpoint("GET", "https://api.stripe.com/v1/balance_transactions?payout=po_1")
        == "GET /v1/balance_transactions"
    )
    assert (
        endpoint("get", "https://api.stripe.com/v1/charges/search?query=x")
        == "GET /v1/charges/search"
    )
    assert (
        endpoint("post", "https://api.stripe.com/v1/customers/cus_9/sources/card_1")
        == "POST /v1/customers/{id}/sources/{id}"
    )


def test_two_endpoints_go_at_their_own_pace_while_the_account_budget_caps_their_sum(serve):
    server = serve(
        [
            make_charge(f"ch_{i:02d}", 100, created=T0, payment_intent=f"pi_{i:02d}")
            for i in range(30)
        ]
    )
    client = client_for(server, requests_per_second=30, endpoint_requests_per_second=20)
    ids = [f"ch_{i:02d}" for i in range(30)]
    concurrently(
        lambda: retrieve_charges(client, ids, max_workers=3),  # GET /v1/charges/{id}
        lambda: charges_of_intents(client, [f"pi_{i:02d}" for i in range(30)], max_workers=3),
    )  # GET /v1/charges
    records = server.requests
    by_endpoint = {
        name: [r for r in records if endpoint(r.method, r.path) == name]
        for name in ("GET /v1/charges/{id}", "GET /v1/charges")
    }
    assert [len(found) for found in by_endpoint.values()] == [30, 30] and server.count(200) == 60
    # Records are stamped once answered, so threads under load may bunch two or so: hence + 2.
    # Sharing one budget, the two would stay under 20 in all; without the account's, they would
    # reach 2 × 19 = 38.
    assert all(busiest_second(found) <= 20 + 2 for found in by_endpoint.values())
    assert 20 < busiest_second(records) <= 30 + 2


def test_a_test_key_gets_25_requests_per_second_in_all_and_a_live_key_100(serve):
    """Four requests to each of eight endpoints: no endpoint's budget binds, only the account's."""
    ledger = {
        "disputes": [make_dispute("dp_1", "ch_1", 100)],
        "payouts": [make_payout("po_1", 100, arrival_date=T0)],
        "balance_transactions": [make_balance_transaction("txn_1", 100, payout="po_1", created=T0)],
    }
    ones = {
        "charges": "ch_1",
        "disputes": "dp_1",
        "payouts": "po_1",
        "balance_transactions": "txn_1",
    }
    paths = [f"/v1/{kind}{rest}" for kind, one in ones.items() for rest in ("", f"/{one}")] * 4
    seconds, busiest = {}, {}
    for key in (DEFAULT_API_KEY, LIVE_KEY):
        server = serve([make_charge("ch_1", 100, created=T0)], api_key=key, **ledger)
        client = client_for(server, api_key=key)  # no budgets given: the key's mode decides
        began = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda path: client.raw_request("get", path), paths))  # noqa: B023
        seconds[key], busiest[key] = time.monotonic() - began, busiest_second(server.requests)
        assert server.count(200) == 32
    assert seconds[DEFAULT_API_KEY] >= 31 / 23.75 - 0.05  # 32 requests 1/23.75 s apart: 95% of 25/s
    assert busiest[LIVE_KEY] > 25  # 95/s: all 32 within a second


def test_two_clients_made_for_the_same_key_share_one_budget(serve):
    server = serve([make_charge(f"ch_{i:02d}", 100, created=T0) for i in range(24)])
    first, second = (
        client_for(server, requests_per_second=100, endpoint_requests_per_second=20)
        for _ in range(2)
    )
    concurrently(
        lambda: retrieve_charges(first, [f"ch_{i:02d}" for i in range(12)], max_workers=4),
        lambda: retrieve_charges(second, [f"ch_{i:02d}" for i in range(12, 24)], max_workers=4),
    )
    # Alone, each could send its 12 at once: 24 in one second. (+ 1: records are stamped once
    # answered.)
    assert server.count(200) == 24 and busiest_second(server.requests) <= 20 + 1


def test_the_rate_settings_default_to_the_key_mode_and_25_per_endpoint(tmp_path):
    settings = Settings.from_env(
        {"STRIPE_REQUESTS_PER_SECOND": "", "STRIPE_ENDPOINT_REQUESTS_PER_SECOND": ""},
        base_dir=tmp_path,
    )
    assert (settings.stripe_requests_per_second, settings.stripe_endpoint_requests_per_second) == (
        None,
        25.0,
    )


def test_the_rate_settings_take_raised_limits(tmp_path):
    env = {"STRIPE_REQUESTS_PER_SECOND": "250", "STRIPE_ENDPOINT_REQUESTS_PER_SECOND": " 62.5 "}
    settings = Settings.from_env(env, base_dir=tmp_path)
    assert (settings.stripe_requests_per_second, settings.stripe_endpoint_requests_per_second) == (
        250.0,
        62.5,
    )


@pytest.mark.parametrize(
    "variable", ["STRIPE_REQUESTS_PER_SECOND", "STRIPE_ENDPOINT_REQUESTS_PER_SECOND"]
)
@pytest.mark.parametrize("value", ["0", "-25", "fast", "inf", "nan"])
def test_a_bad_rate_setting_is_refused_naming_the_variable(tmp_path, variable, value):
    with pytest.raises(ConfigError, match=f"^{variable}: ") as raised:
        Settings.from_env({variable: value}, base_dir=tmp_path)
    assert raised.value.variable == variable
