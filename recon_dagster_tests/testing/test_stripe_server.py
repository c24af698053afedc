"""The local Stripe server answers like Stripe's API, through the real `stripe` SDK and raw HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
import requests
import stripe

from recon_dagster.testing.connect_money import destination_charge
from recon_dagster.testing.stripe_server import (
    DEFAULT_API_KEY,
    PAYOUT_FIELD,
    StripeServer,
    load_charges,
    make_balance_transaction,
    make_charge,
    make_dispute,
    make_payout,
    payout_transactions,
)

T0 = 1_710_000_000
DAY = 86_400
D0 = 1_710_028_800  # 2024-03-10T00:00:00Z: Stripe's arrival dates are midnights UTC


def sdk(server: StripeServer, key: str = DEFAULT_API_KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": server.url}, max_network_retries=0)


def get(
    server: StripeServer,
    path: str,
    *,
    key: str | None = DEFAULT_API_KEY,
    method: str = "GET",
    headers: dict[str, str] | None = None,
):
    """(status, headers, parsed JSON body) of a raw request, for what the SDK cannot send."""
    request = urllib.request.Request(
        server.url + path,
        method=method,
        data=b"" if method == "POST" else None,
        headers=headers or {},
    )
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def ids(listing) -> list[str]:
    return [obj.id for obj in listing]


def disputes_server(serve, **options) -> StripeServer:
    """Three disputes of three charges, created a second apart; the second's charge was paid by a
    PaymentIntent."""
    return serve(
        disputes=[
            make_dispute("dp_1", "ch_1", 100, created=T0),
            make_dispute("dp_2", "ch_2", 200, created=T0 + 1, payment_intent="pi_2"),
            make_dispute("dp_3", "ch_3", 300, created=T0 + 2, status="won"),
        ],
        **options,
    )


def test_lists_newest_first_with_equal_times_ordered_by_id_descending(serve):
    server = serve(
        [
            make_charge("ch_a", 100, created=T0),
            make_charge("ch_c", 100, created=T0 + 5),
            make_charge("ch_b", 100, created=T0),
        ]
    )
    assert ids(sdk(server).v1.charges.list()) == ["ch_c", "ch_b", "ch_a"]


def test_250_charges_take_three_pages_of_100_chained_by_starting_after(serve):
    server = serve([make_charge(f"ch_{i:03d}", 100, created=T0 + i) for i in range(250)])
    listed = ids(sdk(server).v1.charges.list(params={"limit": 100}).auto_paging_iter())
    assert listed == [f"ch_{i:03d}" for i in reversed(range(250))]
    log = server.requests
    assert [r.query.get("starting_after") for r in log] == [None, "ch_150", "ch_050"]
    assert all(
        r.path == "/v1/charges" and r.status == 200 and r.query["limit"] == "100" for r in log
    )


def test_a_page_says_whether_more_follow(serve):
    server = serve([make_charge(f"ch_{i}", 100, created=T0 + i) for i in range(3)])
    _, _, body = get(server, "/v1/charges?limit=2")
    assert (body["object"], body["url"], body["has_more"], len(body["data"])) == (
        "list",
        "/v1/charges",
        True,
        2,
    )
    _, _, rest = get(server, "/v1/charges?limit=2&starting_after=ch_1")
    assert ([c["id"] for c in rest["data"]], rest["has_more"]) == (["ch_0"], False)


def test_ending_before_returns_the_newer_charges_next_to_the_cursor(serve):
    server = serve([make_charge(f"ch_{i}", 100, created=T0 + i) for i in range(6)])
    _, _, body = get(server, "/v1/charges?limit=2&ending_before=ch_1")
    assert ([c["id"] for c in body["data"]], body["has_more"]) == (["ch_3", "ch_2"], True)


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ({"gt": T0 + 1}, ["ch_3", "ch_2"]),
        ({"gte": T0 + 1}, ["ch_3", "ch_2", "ch_1"]),
        ({"lt": T0 + 1}, ["ch_0"]),
        ({"lte": T0 + 1}, ["ch_1", "ch_0"]),
        ({"gte": T0 + 1, "lt": T0 + 3}, ["ch_2", "ch_1"]),
        (T0 + 2, ["ch_2"]),
    ],
)
def test_created_filters_select_by_whole_seconds(serve, created, expected):
    server = serve([make_charge(f"ch_{i}", 100, created=T0 + i) for i in range(4)])
    assert ids(sdk(server).v1.charges.list(params={"created": created})) == expected


def test_customer_and_payment_intent_filters_narrow_the_list(serve):
    server = serve(
        [
            make_charge("ch_1", 100, customer="cus_a", payment_intent="pi_1"),
            make_charge("ch_2", 100, customer="cus_a", payment_intent="pi_2"),
            make_charge("ch_3", 100, customer="cus_b", payment_intent="pi_3"),
        ]
    )
    charges = sdk(server).v1.charges
    assert sorted(ids(charges.list(params={"customer": "cus_a"}))) == ["ch_1", "ch_2"]
    assert ids(charges.list(params={"payment_intent": "pi_3"})) == ["ch_3"]
    assert ids(charges.list(params={"customer": "cus_a", "payment_intent": "pi_3"})) == []


def test_expand_is_accepted_and_ignored(serve):
    server = serve([make_charge("ch_1", 100, customer="cus_a")])
    assert ids(sdk(server).v1.charges.list(params={"expand": ["data.customer"]})) == ["ch_1"]


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_a_limit_outside_1_to_100_is_an_invalid_request_about_limit(serve, limit):
    status, _, body = get(serve(), f"/v1/charges?limit={limit}")
    assert (status, body["error"]["type"], body["error"]["param"]) == (
        400,
        "invalid_request_error",
        "limit",
    )


def test_an_unknown_parameter_is_rejected_as_stripe_does(serve):
    status, _, body = get(serve(), "/v1/charges?created_after=5")
    assert status == 400
    assert body == {
        "error": {
            "type": "invalid_request_error",
            "code": "parameter_unknown",
            "param": "created_after",
            "message": "Received unknown parameter: created_after",
        }
    }


def test_retrieve_returns_the_charge(serve):
    server = serve([make_charge("ch_1", 1234, currency="eur")])
    charge = sdk(server).v1.charges.retrieve("ch_1")
    assert (charge.id, charge.amount, charge.currency) == ("ch_1", 1234, "eur")


def test_retrieving_an_unknown_charge_is_404_resource_missing(serve):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        sdk(serve()).v1.charges.retrieve("ch_nope")
    error = raised.value
    assert (error.http_status, error.code, error.param) == (404, "resource_missing", "id")
    assert error.user_message == "No such charge: 'ch_nope'"


def test_a_wrong_key_is_401_and_the_message_shows_only_its_last_four_characters(serve):
    with pytest.raises(stripe.AuthenticationError) as raised:
        sdk(serve(), key="sk_test_wrongkey9876").v1.charges.list()
    assert raised.value.http_status == 401
    assert raised.value.user_message == "Invalid API Key provided: sk_test_****9876"


def test_a_request_without_a_key_is_401(serve):
    status, _, body = get(serve(), "/v1/charges", key=None)
    assert (status, body["error"]["type"]) == (401, "invalid_request_error")


def test_requests_over_the_rate_limit_get_429_with_retry_after(serve):
    server = serve(rate_limit=2, retry_after=3)
    statuses = [get(server, "/v1/charges")[0] for _ in range(3)]
    status, headers, body = get(server, "/v1/charges")
    assert statuses == [200, 200, 429]
    assert (status, headers["Retry-After"], body["error"]["code"]) == (429, "3", "rate_limit")


def test_the_rate_limit_window_rolls_after_a_second(serve):
    server = serve(rate_limit=1)
    assert [get(server, "/v1/charges")[0] for _ in range(2)] == [200, 429]
    time.sleep(1.05)
    assert get(server, "/v1/charges")[0] == 200


def test_an_endpoint_over_its_limit_gets_429_with_retry_after_while_another_endpoint_gets_through(
    serve,
):
    server = serve(
        [make_charge("ch_1", 100, created=T0), make_charge("ch_2", 200, created=T0)],
        endpoint_rate_limit=2,
        retry_after=3,
    )
    assert [get(server, "/v1/charges")[0] for _ in range(2)] == [200, 200]
    status, headers, body = get(server, "/v1/charges")
    assert (status, headers["Retry-After"], body["error"]["type"], body["error"]["code"]) == (
        429,
        "3",
        "invalid_request_error",
        "rate_limit",
    )
    # Retrieving by id is another endpoint, one for every id: its third request is over, whichever
    # id it asks.
    assert [
        get(server, path)[0]
        for path in ("/v1/charges/ch_1", "/v1/charges/ch_2", "/v1/charges/ch_1")
    ] == [200, 200, 429]
    assert get(server, "/v1/disputes")[0] == 200
    assert (server.count(429), server.rate_limited("endpoint"), server.rate_limited("global")) == (
        2,
        2,
        0,
    )


def test_requests_over_the_global_limit_get_429_whatever_their_endpoint(serve):
    server = serve(rate_limit=3, endpoint_rate_limit=2, retry_after=2)
    assert [get(server, path)[0] for path in ("/v1/charges", "/v1/disputes", "/v1/payouts")] == [
        200,
        200,
        200,
    ]
    status, headers, body = get(server, "/v1/balance_transactions")
    assert (status, headers["Retry-After"], body["error"]["code"]) == (429, "2", "rate_limit")
    assert (server.count(429), server.rate_limited("global"), server.rate_limited()) == (1, 1, 1)


def test_a_refused_request_counts_against_neither_limit(serve):
    server = serve(rate_limit=2, endpoint_rate_limit=1)
    assert [get(server, path)[0] for path in ("/v1/charges", "/v1/charges", "/v1/disputes")] == [
        200,
        429,
        200,
    ]
    assert (
        get(server, "/v1/payouts")[0] == 429
    )  # the global window holds the two accepted requests only
    assert (server.rate_limited("endpoint"), server.rate_limited("global")) == (1, 1)


def test_injected_failures_answer_the_next_requests_then_stop(serve):
    server = serve()
    server.fail_next(500, count=2)
    status, _, body = get(server, "/v1/charges")
    assert (status, body["error"]["type"]) == (500, "api_error")
    assert [get(server, "/v1/charges")[0] for _ in range(2)] == [500, 200]
    assert (server.count(500), server.count(200), server.count()) == (2, 1, 3)


def test_a_dropped_connection_gets_no_response(serve):
    server = serve()
    server.drop_connection_next()
    with pytest.raises((ConnectionError, urllib.error.URLError)):
        get(server, "/v1/charges")
    assert get(server, "/v1/charges")[0] == 200
    assert [r.status for r in server.requests] == [0, 200]


def test_latency_delays_each_request_but_concurrent_requests_overlap(serve):
    server = serve(latency=0.2)
    began = time.monotonic()
    threads = [threading.Thread(target=get, args=(server, "/v1/charges")) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One after the other they would take 5 x 0.2 s: anything under that overlapped, however loaded
    # the machine is.
    assert 0.2 <= time.monotonic() - began < 5 * 0.2
    assert server.count(200) == 5


def test_a_held_request_waits_for_release_while_later_ones_are_let_by(serve):
    server = serve()
    server.hold()
    held = threading.Thread(target=get, args=(server, "/v1/charges"))
    held.start()
    deadline = time.monotonic() + 5
    while not server.held():
        assert time.monotonic() < deadline, "the request never arrived"
        time.sleep(0.01)
    server.let_new_requests_by()
    assert get(server, "/v1/charges")[0] == 200  # answered while the first one waits
    assert held.is_alive() and server.held() == 1 and server.count(200) == 1
    server.release()
    held.join(timeout=5)
    assert not held.is_alive() and server.held() == 0 and server.count(200) == 2


def test_responses_are_json_with_a_request_id(serve):
    _, headers, _ = get(serve(), "/v1/charges")
    assert headers["Content-Type"] == "application/json"
    assert headers["Request-Id"].startswith("req_")


def test_head_answers_headers_without_a_body_and_post_is_refused(serve):
    server = serve([make_charge("ch_1", 100)])
    status, headers, body = get(server, "/v1/charges", method="HEAD")
    assert (status, body) == (200, None) and int(headers["Content-Length"]) > 0
    assert get(server, "/v1/charges", method="POST")[0] == 405


def test_added_and_replaced_charges_are_served_at_once(serve):
    server = serve([make_charge("ch_1", 100, created=T0)])
    server.add_charges(
        [make_charge("ch_2", 200, created=T0 + 1), make_charge("ch_1", 150, created=T0)]
    )
    assert [(c.id, c.amount) for c in sdk(server).v1.charges.list()] == [
        ("ch_2", 200),
        ("ch_1", 150),
    ]
    server.replace_charges([make_charge("ch_3", 300)])
    assert ids(sdk(server).v1.charges.list()) == ["ch_3"]


def test_a_page_does_not_slow_down_with_the_size_of_the_data_set(serve):
    def seconds_for_pages(count: int) -> float:
        server = serve([{"id": f"ch_{i:06d}", "created": T0 + i} for i in range(count)])
        session = requests.Session()
        url = f"{server.url}/v1/charges?limit=1&created[lt]={T0 + count // 2}"
        session.get(url, headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"})  # connect once
        began = time.perf_counter()
        for _ in range(100):
            session.get(
                url, headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}
            ).raise_for_status()
        return time.perf_counter() - began

    small, large = seconds_for_pages(1_000), seconds_for_pages(100_000)
    # A scan of 100,000 charges costs milliseconds per request; bisecting costs nothing measurable.
    assert large < small * 3 + 0.05


def test_disputes_list_newest_first_in_stripes_list_shape(serve):
    server = disputes_server(serve)
    _, _, body = get(server, "/v1/disputes?limit=2")
    assert (body["object"], body["url"], body["has_more"]) == ("list", "/v1/disputes", True)
    assert [d["id"] for d in body["data"]] == ["dp_3", "dp_2"]


def test_disputes_filter_by_charge(serve):
    listing = sdk(disputes_server(serve)).v1.disputes.list(params={"charge": "ch_2"})
    assert [(d.id, d.charge, d.amount) for d in listing] == [("dp_2", "ch_2", 200)]


def test_disputes_filter_by_payment_intent(serve):
    disputes = sdk(disputes_server(serve)).v1.disputes
    assert ids(disputes.list(params={"payment_intent": "pi_2"})) == ["dp_2"]
    assert ids(disputes.list(params={"payment_intent": "pi_2", "charge": "ch_1"})) == []


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ({"gte": T0 + 1}, ["dp_3", "dp_2"]),
        ({"gt": T0, "lte": T0 + 1}, ["dp_2"]),
        ({"lt": T0 + 1}, ["dp_1"]),
        (T0 + 2, ["dp_3"]),
    ],
)
def test_disputes_filter_by_created_window(serve, created, expected):
    assert (
        ids(sdk(disputes_server(serve)).v1.disputes.list(params={"created": created})) == expected
    )


def test_250_disputes_page_by_starting_after_with_none_repeated_or_lost(serve):
    server = serve(
        disputes=[
            make_dispute(f"dp_{i:03d}", f"ch_{i:03d}", 100, created=T0 + i // 7) for i in range(250)
        ]
    )
    listed = ids(sdk(server).v1.disputes.list(params={"limit": 100}).auto_paging_iter())
    assert sorted(listed) == [f"dp_{i:03d}" for i in range(250)] and len(set(listed)) == 250
    assert [r.query.get("starting_after") for r in server.requests] == [
        None,
        listed[99],
        listed[199],
    ]


def test_raw_requests_page_disputes_with_nested_created(serve):
    server = serve(
        disputes=[make_dispute(f"dp_{i}", "ch_1", 100, created=T0 + i) for i in range(5)]
    )
    client, page = sdk(server), {"charge": "ch_1", "created": {"gte": T0 + 1}, "limit": 2}
    first = client.raw_request("get", "/v1/disputes", **page).data
    rest = client.raw_request(
        "get", "/v1/disputes", **page, starting_after=first["data"][-1]["id"]
    ).data
    assert [d["id"] for d in first["data"] + rest["data"]] == ["dp_4", "dp_3", "dp_2", "dp_1"]
    assert (first["has_more"], rest["has_more"]) == (True, False)


def test_retrieve_returns_the_dispute(serve):
    dispute = sdk(disputes_server(serve)).v1.disputes.retrieve("dp_3")
    assert (dispute.object, dispute.charge, dispute.amount, dispute.status) == (
        "dispute",
        "ch_3",
        300,
        "won",
    )


def test_retrieving_an_unknown_dispute_is_404_resource_missing(serve):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        sdk(disputes_server(serve)).v1.disputes.retrieve("dp_nope")
    error = raised.value
    assert (error.http_status, error.code, error.param) == (404, "resource_missing", "id")
    assert error.user_message == "No such dispute: 'dp_nope'"


def test_a_charges_only_filter_is_an_unknown_parameter_for_disputes(serve):
    status, _, body = get(disputes_server(serve), "/v1/disputes?customer=cus_a")
    assert status == 400
    assert body == {
        "error": {
            "type": "invalid_request_error",
            "code": "parameter_unknown",
            "param": "customer",
            "message": "Received unknown parameter: customer",
        }
    }


def test_an_unknown_dispute_cursor_is_400_resource_missing(serve):
    status, _, body = get(disputes_server(serve), "/v1/disputes?starting_after=dp_nope")
    assert (status, body["error"]["code"], body["error"]["param"]) == (
        400,
        "resource_missing",
        "starting_after",
    )
    assert body["error"]["message"] == "No such dispute: 'dp_nope'"


@pytest.mark.parametrize("limit", ["0", "101"])
def test_a_dispute_limit_outside_1_to_100_is_an_invalid_request_about_limit(serve, limit):
    status, _, body = get(disputes_server(serve), f"/v1/disputes?limit={limit}")
    assert (status, body["error"]["param"]) == (400, "limit")


def test_disputes_need_the_key_like_charges(serve):
    server = disputes_server(serve)
    with pytest.raises(stripe.AuthenticationError):
        sdk(server, key="sk_test_wrongkey9876").v1.disputes.list()
    assert get(server, "/v1/disputes/dp_1", key=None)[0] == 401


def test_disputes_are_rate_limited_failed_on_demand_and_logged(serve):
    server = disputes_server(serve, rate_limit=2)
    server.fail_next(503)
    statuses = [
        get(server, path)[0]
        for path in ("/v1/disputes", "/v1/disputes", "/v1/disputes/dp_1", "/v1/disputes")
    ]
    assert statuses == [503, 200, 200, 429]
    assert (
        server.count(path="/v1/disputes") == 3 and server.count(200, path="/v1/disputes/dp_1") == 1
    )


def test_added_disputes_are_served_at_once(serve):
    server = disputes_server(serve)
    server.add_disputes(
        [
            make_dispute("dp_4", "ch_4", 400, created=T0 + 3),
            make_dispute("dp_1", "ch_1", 100, created=T0, status="lost"),
        ]
    )
    disputes = sdk(server).v1.disputes
    assert ids(disputes.list(params={"limit": 2})) == ["dp_4", "dp_3"]
    assert disputes.retrieve("dp_1").status == "lost"


def test_an_unrecognized_url_names_every_resource_served(serve):
    status, _, body = get(serve(), "/v1/refunds")
    assert status == 404
    assert (
        "/v1/charges, /v1/disputes, /v1/payouts, /v1/balance_transactions, /v1/transfers, "
        "/v1/accounts, /v1/balance and /v1/events" in body["error"]["message"]
    )


def test_make_dispute_derives_currency_evidence_deadline_and_refundability():
    dispute = make_dispute("dp_1", "ch_1", 500, currency="EUR", created=T0, payment_intent="pi_1")
    assert (dispute["object"], dispute["currency"], dispute["status"], dispute["reason"]) == (
        "dispute",
        "eur",
        "needs_response",
        "fraudulent",
    )
    details = dispute["evidence_details"]
    assert details["due_by"] > T0
    assert (details["has_evidence"], details["past_due"], details["submission_count"]) == (
        False,
        False,
        0,
    )
    assert (
        dispute["balance_transactions"],
        dispute["livemode"],
        dispute["is_charge_refundable"],
    ) == ([], False, False)
    assert (
        make_dispute("dp_2", "ch_2", 500, status="warning_needs_response")["is_charge_refundable"]
        is True
    )


def test_make_dispute_overrides_replace_any_field_even_with_nonsense(serve):
    server = serve(
        disputes=[make_dispute("dp_1", "ch_1", "lots", created="later", evidence_details=None)]
    )
    _, _, body = get(server, "/v1/disputes?charge=ch_1")
    assert [(d["amount"], d["evidence_details"], d["created"]) for d in body["data"]] == [
        ("lots", None, "later")
    ]


def test_make_charge_derives_paid_captured_and_refunded_fields():
    charge = make_charge("ch_1", 500, currency="JPY", amount_refunded=500)
    assert (charge["object"], charge["currency"], charge["paid"], charge["amount_captured"]) == (
        "charge",
        "jpy",
        True,
        500,
    )
    assert charge["refunded"] is True and charge["refunds"]["object"] == "list"
    uncaptured = make_charge("ch_2", 500, captured=False, status="pending")
    assert (uncaptured["amount_captured"], uncaptured["paid"], uncaptured["refunded"]) == (
        0,
        False,
        False,
    )


def test_make_charge_serves_a_partial_capture_and_a_dispute_flag(serve):
    server = serve(
        [make_charge("ch_1", 1000, amount_captured=600, disputed=True), make_charge("ch_2", 1000)]
    )
    partial, whole = (
        sdk(server).v1.charges.retrieve("ch_1"),
        sdk(server).v1.charges.retrieve("ch_2"),
    )
    assert (partial.amount, partial.amount_captured, partial.amount_refunded, partial.disputed) == (
        1000,
        600,
        0,
        True,
    )
    assert (whole.amount_captured, whole.disputed) == (1000, False)


def test_load_charges_reads_a_json_array_or_json_lines(tmp_path):
    charges = [make_charge("ch_1", 100), make_charge("ch_2", 200)]
    array, lines = tmp_path / "charges.json", tmp_path / "charges.jsonl"
    array.write_text(json.dumps(charges))
    lines.write_text("\n".join(json.dumps(c) for c in charges) + "\n")
    assert load_charges(array) == charges == load_charges(lines)


# --- payouts and balance transactions
# ---------------------------------------------------------------


def payouts_server(serve, **options) -> StripeServer:
    """Six payouts; `po_5`, a manual payout, was created after `po_3` yet arrives before it."""
    return serve(
        payouts=[
            make_payout("po_1", 1000, arrival_date=D0),
            make_payout("po_2", 2000, arrival_date=D0 + DAY),
            make_payout("po_3", 3000, arrival_date=D0 + 2 * DAY, status="in_transit"),
            make_payout("po_4", 4000, arrival_date=D0 + 3 * DAY, status="pending"),
            make_payout(
                "po_5", 5000, arrival_date=D0 + DAY, created=D0 + DAY - 3600, automatic=False
            ),
            make_payout(
                "po_6",
                6000,
                arrival_date=D0 + 2 * DAY,
                status="failed",
                failure_code="account_closed",
                failure_message="The bank account has been closed.",
            ),
        ],
        **options,
    )


def ledger_server(serve, **options) -> StripeServer:
    """Two payouts and what they paid out: `po_a` two charges less a refund, `po_b` a charge less a
    dispute; `txn_ch_4` is in no payout yet. Each payout's own transaction nets its transactions to
    zero."""
    po_a = make_payout("po_a", 941 + 1912 - 500, arrival_date=D0, created=T0 + 100)
    po_b = make_payout("po_b", 4825 - 2500, arrival_date=D0 + DAY, created=T0 + 200)
    transactions = [
        make_balance_transaction(
            "txn_ch_1", 1000, fee=59, source="ch_1", payout="po_a", created=T0 + 1
        ),
        make_balance_transaction(
            "txn_ch_2", 2000, fee=88, source="ch_2", payout="po_a", created=T0 + 2
        ),
        make_balance_transaction(
            "txn_re_1", -500, type="refund", source="re_1", payout="po_a", created=T0 + 3
        ),
        make_balance_transaction(
            "txn_ch_3", 5000, fee=175, source="ch_3", payout="po_b", created=T0 + 101
        ),
        make_balance_transaction(
            "txn_du_1",
            -1000,
            fee=1500,
            type="adjustment",
            reporting_category="dispute",
            source="du_1",
            payout="po_b",
            created=T0 + 102,
        ),
        make_balance_transaction("txn_ch_4", 700, fee=50, source="ch_4", created=T0 + 201),
        payout_transactions(po_a),
        payout_transactions(po_b),
    ]
    charges = [
        make_charge(f"ch_{i}", amount, created=T0 + i)
        for i, amount in ((1, 1000), (2, 2000), (3, 5000), (4, 700))
    ]
    return serve(charges, payouts=[po_a, po_b], balance_transactions=transactions, **options)


@pytest.mark.parametrize(
    ("arrival_date", "expected"),
    [
        ({"gte": D0 + DAY, "lt": D0 + 3 * DAY}, ["po_5", "po_6", "po_3", "po_2"]),
        ({"gt": D0 + 2 * DAY}, ["po_4"]),
        ({"lte": D0}, ["po_1"]),
        (D0 + DAY, ["po_5", "po_2"]),
    ],
)
def test_payouts_list_by_arrival_date_window_newest_created_first(serve, arrival_date, expected):
    listing = sdk(payouts_server(serve)).v1.payouts.list(params={"arrival_date": arrival_date})
    assert ids(listing) == expected


def test_payouts_list_by_exact_status(serve):
    payouts = sdk(payouts_server(serve)).v1.payouts
    assert ids(payouts.list(params={"status": "paid"})) == ["po_5", "po_2", "po_1"]
    failed = payouts.list(params={"status": "failed"}).data
    assert [(p.id, p.failure_code, p.status) for p in failed] == [
        ("po_6", "account_closed", "failed")
    ]
    assert (
        ids(payouts.list(params={"status": "in_transit", "arrival_date": {"gte": D0 + 3 * DAY}}))
        == []
    )


def test_payouts_list_by_destination(serve):
    server = payouts_server(serve)
    server.add_payouts([make_payout("po_7", 700, arrival_date=D0, destination="ba_other")])
    assert ids(sdk(server).v1.payouts.list(params={"destination": "ba_other"})) == ["po_7"]


def test_250_payouts_page_by_auto_paging_iter_each_once_newest_first(serve):
    created = {
        f"po_{i:03d}": D0 + i // 3 * 60 for i in range(250)
    }  # threes share a second: ties go by id
    server = serve(
        payouts=[
            make_payout(pid, 100, arrival_date=D0 + DAY, created=at) for pid, at in created.items()
        ]
    )
    listed = ids(sdk(server).v1.payouts.list(params={"limit": 100}).auto_paging_iter())
    assert listed == sorted(created, key=lambda pid: (created[pid], pid), reverse=True)
    assert [r.query.get("starting_after") for r in server.requests] == [
        None,
        listed[99],
        listed[199],
    ]


def test_an_arrival_date_window_pages_both_ways_without_repeats_or_gaps(serve):
    server = serve(
        payouts=[
            make_payout(f"po_{i:02d}", 100, arrival_date=D0 + i % 4 * DAY, created=T0 + i)
            for i in range(40)
        ]
    )
    window = {"arrival_date": {"gte": D0 + DAY, "lt": D0 + 3 * DAY}, "limit": 3}
    payouts = sdk(server).v1.payouts
    listed = ids(payouts.list(params=window).auto_paging_iter())
    assert listed == [f"po_{i:02d}" for i in reversed(range(40)) if i % 4 in (1, 2)]
    newer = payouts.list(params={**window, "ending_before": listed[-1]})
    assert (ids(newer), newer.has_more) == (listed[-4:-1], True)


def test_balance_transactions_by_payout_are_its_own_transaction_and_what_it_paid_out(serve):
    listing = sdk(ledger_server(serve)).v1.balance_transactions.list(params={"payout": "po_a"})
    assert ids(listing) == ["txn_po_a", "txn_re_1", "txn_ch_2", "txn_ch_1"]
    own = listing.data[0]
    assert (own.type, own.amount, own.fee, own.reporting_category, own.source) == (
        "payout",
        -2353,
        0,
        "payout",
        "po_a",
    )
    assert sum(t.net for t in listing) == 0


def test_balance_transactions_by_payout_and_type_page_through_the_payouts_index(serve):
    transactions = [
        make_balance_transaction(
            f"txn_{i:02d}",
            100,
            type="refund" if i % 3 else "charge",
            payout="po_x" if i % 2 else "po_y",
            created=T0 + i,
        )
        for i in range(60)
    ]
    server = serve(balance_transactions=transactions)
    listing = sdk(server).v1.balance_transactions.list(
        params={"payout": "po_x", "type": "refund", "limit": 4}
    )
    assert ids(listing.auto_paging_iter()) == [
        f"txn_{i:02d}" for i in reversed(range(60)) if i % 2 and i % 3
    ]


def test_balance_transactions_filter_by_type_source_currency_and_created(serve):
    balance_transactions = sdk(ledger_server(serve)).v1.balance_transactions
    assert ids(balance_transactions.list(params={"type": "payout"})) == ["txn_po_b", "txn_po_a"]
    assert ids(balance_transactions.list(params={"source": "ch_3"})) == ["txn_ch_3"]
    assert ids(balance_transactions.list(params={"currency": "eur"})) == []
    window = {"created": {"gt": T0 + 2, "lte": T0 + 101}, "currency": "usd"}
    assert ids(balance_transactions.list(params=window)) == ["txn_ch_3", "txn_po_a", "txn_re_1"]


def test_expand_data_source_returns_the_charge_object_for_charge_sources(serve):
    listing = sdk(ledger_server(serve)).v1.balance_transactions.list(
        params={"payout": "po_a", "expand": ["data.source"]}
    )
    sources = {t.id: t.source for t in listing}
    assert (sources["txn_ch_1"].object, sources["txn_ch_1"].id, sources["txn_ch_1"].amount) == (
        "charge",
        "ch_1",
        1000,
    )
    assert (
        sources["txn_ch_2"].balance_transaction == "txn_2"
    )  # the whole charge, as /v1/charges/ch_2 serves it
    assert (sources["txn_re_1"], sources["txn_po_a"]) == ("re_1", "po_a")  # not charges: still ids


def test_a_charge_source_the_server_does_not_hold_stays_an_id(serve):
    server = serve(
        balance_transactions=[make_balance_transaction("txn_1", 100, source="ch_gone", created=T0)]
    )
    listing = sdk(server).v1.balance_transactions.list(params={"expand": ["data.source"]})
    assert [t.source for t in listing] == ["ch_gone"]


def test_retrieve_returns_the_payout(serve):
    payout = sdk(payouts_server(serve)).v1.payouts.retrieve("po_6")
    assert (payout.object, payout.amount, payout.currency, payout.status, payout.arrival_date) == (
        "payout",
        6000,
        "usd",
        "failed",
        D0 + 2 * DAY,
    )
    assert (payout.balance_transaction, payout.trace_id.status, payout.failure_code) == (
        "txn_po_6",
        "unsupported",
        "account_closed",
    )


def test_retrieve_returns_the_balance_transaction_and_expands_its_source(serve):
    balance_transactions = sdk(ledger_server(serve)).v1.balance_transactions
    transaction = balance_transactions.retrieve("txn_ch_1")
    assert (transaction.amount, transaction.fee, transaction.net, transaction.source) == (
        1000,
        59,
        941,
        "ch_1",
    )
    expanded = balance_transactions.retrieve("txn_ch_1", params={"expand": ["source"]})
    assert (expanded.source.object, expanded.source.id) == ("charge", "ch_1")


def test_retrieving_an_unknown_payout_is_404_resource_missing(serve):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        sdk(payouts_server(serve)).v1.payouts.retrieve("po_nope")
    error = raised.value
    assert (error.http_status, error.code, error.param) == (404, "resource_missing", "payout")
    assert error.user_message == "No such payout: 'po_nope'"


def test_retrieving_an_unknown_balance_transaction_is_404_resource_missing(serve):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        sdk(ledger_server(serve)).v1.balance_transactions.retrieve("txn_nope")
    error = raised.value
    assert (error.http_status, error.code, error.param) == (404, "resource_missing", "id")
    assert error.user_message == "No such balance transaction: 'txn_nope'"


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/v1/payouts?payout=po_a", "payout"),
        ("/v1/balance_transactions?arrival_date=1710028800", "arrival_date"),
        ("/v1/balance_transactions?status=available", "status"),
        (f"/v1/balance_transactions?{PAYOUT_FIELD}=po_a", PAYOUT_FIELD),
    ],
)
def test_an_unknown_filter_is_rejected_for_payouts_and_balance_transactions(serve, path, param):
    status, _, body = get(ledger_server(serve), path)
    assert status == 400
    assert body == {
        "error": {
            "type": "invalid_request_error",
            "code": "parameter_unknown",
            "param": param,
            "message": f"Received unknown parameter: {param}",
        }
    }


def test_the_internal_payout_field_is_never_sent(serve):
    server = ledger_server(serve)
    _, _, listing = get(server, "/v1/balance_transactions?limit=100")
    _, _, one = get(server, "/v1/balance_transactions/txn_ch_1")
    assert len(listing["data"]) == 8
    assert all(PAYOUT_FIELD not in t for t in [*listing["data"], one])


def test_payouts_and_balance_transactions_need_the_key_are_rate_limited_failed_on_demand_and_logged(
    serve,
):
    server = ledger_server(serve, rate_limit=3)
    with pytest.raises(stripe.AuthenticationError):
        sdk(server, key="sk_test_wrongkey9876").v1.payouts.list()
    assert get(server, "/v1/balance_transactions/txn_ch_1", key=None)[0] == 401
    time.sleep(1.05)  # the refused requests were not counted, but let the window start clean
    server.clear_requests()
    server.fail_next(502)
    server.drop_connection_next()
    assert get(server, "/v1/payouts")[0] == 502
    with pytest.raises((ConnectionError, urllib.error.URLError)):
        get(server, "/v1/balance_transactions")
    paths = (
        "/v1/payouts/po_a",
        "/v1/balance_transactions?payout=po_a",
        "/v1/balance_transactions",
        "/v1/payouts",
    )
    assert [get(server, path)[0] for path in paths] == [200, 200, 200, 429]
    assert [r.status for r in server.requests] == [502, 0, 200, 200, 200, 429]
    assert (
        server.count(200, path="/v1/balance_transactions") == 2
        and server.count(path="/v1/payouts") == 2
    )


def test_latency_applies_to_payouts_too(serve):
    server = payouts_server(serve, latency=0.2)
    began = time.monotonic()
    sdk(server).v1.payouts.retrieve("po_1")
    assert time.monotonic() - began >= 0.2


def test_added_and_replaced_payouts_and_balance_transactions_are_served_at_once(serve):
    server = ledger_server(serve)
    po_c = make_payout("po_c", 650, arrival_date=D0 + 2 * DAY, created=T0 + 300)
    server.add_payouts([po_c])
    server.add_balance_transactions(
        [
            payout_transactions(po_c),
            make_balance_transaction(
                "txn_ch_4", 700, fee=50, source="ch_4", payout="po_c", created=T0 + 201
            ),
        ]
    )
    client = sdk(server)
    assert ids(client.v1.payouts.list(params={"limit": 1})) == ["po_c"]
    assert ids(client.v1.balance_transactions.list(params={"payout": "po_c"})) == [
        "txn_po_c",
        "txn_ch_4",
    ]
    server.replace_payouts([])
    server.replace_balance_transactions([make_balance_transaction("txn_9", 1, created=T0)])
    assert ids(client.v1.payouts.list()) == [] and ids(client.v1.balance_transactions.list()) == [
        "txn_9"
    ]


def test_make_payout_derives_created_trace_id_and_balance_transaction():
    payout = make_payout("po_1", 5000, "EUR", arrival_date=D0)
    assert (
        payout["object"],
        payout["currency"],
        payout["created"],
        payout["balance_transaction"],
    ) == ("payout", "eur", D0 - 2 * DAY, "txn_po_1")
    assert (payout["status"], payout["automatic"], payout["method"], payout["type"]) == (
        "paid",
        True,
        "standard",
        "bank",
    )
    assert payout["destination"].startswith("ba_") and payout["trace_id"] == {
        "status": "unsupported",
        "value": None,
    }
    assert (
        make_payout("po_2", 1, arrival_date=D0, status="in_transit")["trace_id"]["status"]
        == "pending"
    )
    traced = make_payout(
        "po_3", 1, arrival_date=D0, trace_id="TRACE123", balance_transaction="txn_x"
    )
    assert (traced["trace_id"], traced["balance_transaction"]) == (
        {"status": "supported", "value": "TRACE123"},
        "txn_x",
    )


@pytest.mark.parametrize(
    ("type_", "category"),
    [
        ("charge", "charge"),
        ("payment", "charge"),
        ("refund", "refund"),
        ("payment_refund", "refund"),
        ("adjustment", "adjustment"),
        ("stripe_fee", "fee"),
        ("payout", "payout"),
        ("transfer", "transfer"),
    ],
)
def test_make_balance_transaction_derives_reporting_category_from_type(type_, category):
    assert (
        make_balance_transaction("txn_1", 100, type=type_, created=T0)["reporting_category"]
        == category
    )


def test_make_balance_transaction_derives_net_and_fee_details():
    charged = make_balance_transaction(
        "txn_1", 1000, fee=59, currency="USD", source="ch_1", payout="po_1", created=T0
    )
    assert (
        charged["net"],
        charged["currency"],
        charged["available_on"],
        charged[PAYOUT_FIELD],
    ) == (941, "usd", T0, "po_1")
    assert charged["fee_details"] == [
        {
            "amount": 59,
            "application": None,
            "currency": "usd",
            "description": "Stripe processing fees",
            "type": "stripe_fee",
        }
    ]
    refunded = make_balance_transaction(
        "txn_2", -300, type="refund", created=T0, available_on=T0 + DAY
    )
    assert (refunded["net"], refunded["fee_details"], refunded["available_on"]) == (
        -300,
        [],
        T0 + DAY,
    )


def test_payout_transactions_builds_the_payouts_own_transaction():
    payout = make_payout("po_1", 2500, "gbp", arrival_date=D0, created=T0)
    own = payout_transactions(payout)
    assert (own["id"], own["type"], own["amount"], own["fee"], own["net"], own["currency"]) == (
        "txn_po_1",
        "payout",
        -2500,
        0,
        -2500,
        "gbp",
    )
    assert (own["source"], own[PAYOUT_FIELD], own["reporting_category"], own["created"]) == (
        "po_1",
        "po_1",
        "payout",
        T0,
    )


def test_balance_transactions_keep_their_payout_through_a_file(serve, tmp_path):
    payout = make_payout("po_1", 900, arrival_date=D0, created=T0 + 10)
    path = tmp_path / "stripe_balance_transactions.json"
    path.write_text(
        json.dumps(
            [
                make_balance_transaction("txn_1", 1000, fee=100, payout="po_1", created=T0),
                payout_transactions(payout),
            ]
        )
    )
    server = serve(payouts=[payout], balance_transactions=load_charges(path))
    assert ids(sdk(server).v1.balance_transactions.list(params={"payout": "po_1"})) == [
        "txn_po_1",
        "txn_1",
    ]


def test_the_command_line_serves_payouts_and_balance_transactions_found_beside_the_data(tmp_path):
    payout = make_payout("po_1", 900, arrival_date=D0, created=T0 + 10)
    (tmp_path / "charges.json").write_text(json.dumps([make_charge("ch_1", 1000, created=T0)]))
    (tmp_path / "stripe_payouts.json").write_text(json.dumps([payout]))
    (tmp_path / "stripe_balance_transactions.json").write_text(
        "\n".join(
            json.dumps(t)
            for t in [
                make_balance_transaction(
                    "txn_1", 1000, fee=100, source="ch_1", payout="po_1", created=T0
                ),
                payout_transactions(payout),
            ]
        )
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recon_dagster.testing.stripe_server",
            "--data",
            str(tmp_path / "charges.json"),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert "1 charges, 0 disputes, 1 payouts and 2 balance transactions" in line
        client = stripe.StripeClient(
            DEFAULT_API_KEY, base_addresses={"api": re.search(r"at (http://\S+) ", line)[1]}
        )
        listing = client.v1.balance_transactions.list(
            params={"payout": "po_1", "expand": ["data.source"]}
        )
        assert [(t.id, getattr(t.source, "object", t.source)) for t in listing] == [
            ("txn_po_1", "po_1"),
            ("txn_1", "charge"),
        ]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_command_line_takes_an_endpoint_rate_limit(tmp_path):
    (tmp_path / "charges.json").write_text(json.dumps([make_charge("ch_1", 1000, created=T0)]))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recon_dagster.testing.stripe_server",
            "--data",
            str(tmp_path / "charges.json"),
            "--port",
            "0",
            "--endpoint-rate-limit",
            "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        served = SimpleNamespace(url=re.search(r"at (http://\S+) ", process.stdout.readline())[1])
        assert [
            get(served, path)[0] for path in ("/v1/charges", "/v1/charges", "/v1/charges/ch_1")
        ] == [200, 429, 200]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_payout_of_100000_transactions_pages_through_payout_quickly(serve):
    """Paged with the SDK's `raw_request`: turning 100,000 objects into `StripeObject`s costs the
    SDK ~40 s alone."""
    big = make_payout("po_big", 10**8, arrival_date=D0 + DAY, created=T0 + 40_000)
    small = make_payout("po_small", 10**4, arrival_date=D0, created=T0 + 30_000)
    transactions = [
        make_balance_transaction(
            f"txn_{i:06d}",
            1000,
            fee=59,
            source=f"ch_{i:06d}",
            payout="po_big" if i % 1000 else "po_small",
            created=T0 + i // 3,
        )
        for i in range(100_100)
    ]
    server = serve(
        payouts=[big, small], balance_transactions=[*transactions, payout_transactions(big)]
    )
    client, listed, after = sdk(server), [], {}
    while True:
        page = client.raw_request(
            "get", "/v1/balance_transactions", payout="po_big", limit=100, **after
        ).data
        listed += [t["id"] for t in page["data"]]
        if not page["has_more"]:
            break
        after = {"starting_after": listed[-1]}
    assert len(listed) == len(set(listed)) == 100_000
    assert set(listed) == {"txn_po_big"} | {
        t["id"] for t in transactions if t[PAYOUT_FIELD] == "po_big"
    }

    def seconds_for_pages(payout: str, starting_after: str) -> float:
        session = requests.Session()
        query = f"payout={payout}&limit=100&starting_after={starting_after}"
        url = f"{server.url}/v1/balance_transactions?{query}"
        session.get(url, headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"})  # connect once
        began = time.perf_counter()
        for _ in range(50):
            session.get(
                url, headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}
            ).raise_for_status()
        return time.perf_counter() - began

    # Both pages hold 100 transactions; a page found by scanning would cost the big payout
    # milliseconds more.
    small_pages, big_pages = (
        seconds_for_pages("po_small", "txn_100000"),
        seconds_for_pages("po_big", "txn_050001"),
    )
    assert big_pages < small_pages * 3 + 0.05


def test_an_expansion_follows_a_connected_accounts_payment_to_the_platforms_charge():
    """`expand[]=data.source.source_transfer.source_transaction`, as Stripe expands four levels:
    the account's payment, the platform's transfer that made it, and the charge behind that."""
    server = StripeServer([], api_key=DEFAULT_API_KEY)
    server.add_connected_account("acct_1A")
    server.add_sale(destination_charge("ch_9", 1_000, "acct_1A", created=T0), "acct_1A")
    with server:
        status, _, body = get(
            server,
            "/v1/balance_transactions?expand[]=data.source.source_transfer.source_transaction",
            headers={"Stripe-Account": "acct_1A"},
        )
    [payment] = body["data"]
    transfer = payment["source"]["source_transfer"]
    assert (status, payment["source"]["id"], transfer["id"]) == (200, "py_9", "tr_9")
    assert transfer["source_transaction"]["transfer_data"]["destination"] == "acct_1A"
