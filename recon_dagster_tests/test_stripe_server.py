"""The local Stripe server answers like Stripe's API, through the real `stripe` SDK and raw HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
import requests
import stripe

from recon_dagster.testing.stripe_server import DEFAULT_API_KEY, StripeServer, load_charges, make_charge, make_dispute

T0 = 1_710_000_000



def sdk(server: StripeServer, key: str = DEFAULT_API_KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": server.url}, max_network_retries=0)


def get(server: StripeServer, path: str, *, key: str | None = DEFAULT_API_KEY, method: str = "GET"):
    """(status, headers, parsed JSON body) of a raw request, for what the SDK cannot send."""
    request = urllib.request.Request(server.url + path, method=method, data=b"" if method == "POST" else None)
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
    """Three disputes of three charges, created a second apart; the second's charge was paid by a PaymentIntent."""
    return serve(disputes=[make_dispute("dp_1", "ch_1", 100, created=T0),
                           make_dispute("dp_2", "ch_2", 200, created=T0 + 1, payment_intent="pi_2"),
                           make_dispute("dp_3", "ch_3", 300, created=T0 + 2, status="won")], **options)  # fmt: skip


def test_lists_newest_first_with_equal_times_ordered_by_id_descending(serve):
    server = serve([make_charge("ch_a", 100, created=T0), make_charge("ch_c", 100, created=T0 + 5),
                    make_charge("ch_b", 100, created=T0)])  # fmt: skip
    assert ids(sdk(server).v1.charges.list()) == ["ch_c", "ch_b", "ch_a"]


def test_250_charges_take_three_pages_of_100_chained_by_starting_after(serve):
    server = serve([make_charge(f"ch_{i:03d}", 100, created=T0 + i) for i in range(250)])
    listed = ids(sdk(server).v1.charges.list(params={"limit": 100}).auto_paging_iter())
    assert listed == [f"ch_{i:03d}" for i in reversed(range(250))]
    log = server.requests
    assert [r.query.get("starting_after") for r in log] == [None, "ch_150", "ch_050"]
    assert all(r.path == "/v1/charges" and r.status == 200 and r.query["limit"] == "100" for r in log)


def test_a_page_says_whether_more_follow(serve):
    server = serve([make_charge(f"ch_{i}", 100, created=T0 + i) for i in range(3)])
    _, _, body = get(server, "/v1/charges?limit=2")
    assert (body["object"], body["url"], body["has_more"], len(body["data"])) == ("list", "/v1/charges", True, 2)
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
    server = serve([make_charge("ch_1", 100, customer="cus_a", payment_intent="pi_1"),
                    make_charge("ch_2", 100, customer="cus_a", payment_intent="pi_2"),
                    make_charge("ch_3", 100, customer="cus_b", payment_intent="pi_3")])  # fmt: skip
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
    assert (status, body["error"]["type"], body["error"]["param"]) == (400, "invalid_request_error", "limit")


def test_an_unknown_parameter_is_rejected_as_stripe_does(serve):
    status, _, body = get(serve(), "/v1/charges?created_after=5")
    assert status == 400
    assert body == {"error": {"type": "invalid_request_error", "code": "parameter_unknown", "param": "created_after",
                              "message": "Received unknown parameter: created_after"}}  # fmt: skip


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
    assert 0.2 <= time.monotonic() - began < 0.6
    assert server.count(200) == 5


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
    server.add_charges([make_charge("ch_2", 200, created=T0 + 1), make_charge("ch_1", 150, created=T0)])
    assert [(c.id, c.amount) for c in sdk(server).v1.charges.list()] == [("ch_2", 200), ("ch_1", 150)]
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
            session.get(url, headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}).raise_for_status()
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
    assert ids(sdk(disputes_server(serve)).v1.disputes.list(params={"created": created})) == expected


def test_250_disputes_page_by_starting_after_with_none_repeated_or_lost(serve):
    server = serve(disputes=[make_dispute(f"dp_{i:03d}", f"ch_{i:03d}", 100, created=T0 + i // 7) for i in range(250)])
    listed = ids(sdk(server).v1.disputes.list(params={"limit": 100}).auto_paging_iter())
    assert sorted(listed) == [f"dp_{i:03d}" for i in range(250)] and len(set(listed)) == 250
    assert [r.query.get("starting_after") for r in server.requests] == [None, listed[99], listed[199]]


def test_raw_requests_page_disputes_with_nested_created(serve):
    server = serve(disputes=[make_dispute(f"dp_{i}", "ch_1", 100, created=T0 + i) for i in range(5)])
    client, page = sdk(server), {"charge": "ch_1", "created": {"gte": T0 + 1}, "limit": 2}
    first = client.raw_request("get", "/v1/disputes", **page).data
    rest = client.raw_request("get", "/v1/disputes", **page, starting_after=first["data"][-1]["id"]).data
    assert [d["id"] for d in first["data"] + rest["data"]] == ["dp_4", "dp_3", "dp_2", "dp_1"]
    assert (first["has_more"], rest["has_more"]) == (True, False)


def test_retrieve_returns_the_dispute(serve):
    dispute = sdk(disputes_server(serve)).v1.disputes.retrieve("dp_3")
    assert (dispute.object, dispute.charge, dispute.amount, dispute.status) == ("dispute", "ch_3", 300, "won")


def test_retrieving_an_unknown_dispute_is_404_resource_missing(serve):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        sdk(disputes_server(serve)).v1.disputes.retrieve("dp_nope")
    error = raised.value
    assert (error.http_status, error.code, error.param) == (404, "resource_missing", "id")
    assert error.user_message == "No such dispute: 'dp_nope'"


def test_a_charges_only_filter_is_an_unknown_parameter_for_disputes(serve):
    status, _, body = get(disputes_server(serve), "/v1/disputes?customer=cus_a")
    assert status == 400
    assert body == {"error": {"type": "invalid_request_error", "code": "parameter_unknown", "param": "customer",
                              "message": "Received unknown parameter: customer"}}  # fmt: skip


def test_an_unknown_dispute_cursor_is_400_resource_missing(serve):
    status, _, body = get(disputes_server(serve), "/v1/disputes?starting_after=dp_nope")
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "resource_missing", "starting_after")
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
    statuses = [get(server, path)[0] for path in ("/v1/disputes", "/v1/disputes", "/v1/disputes/dp_1", "/v1/disputes")]
    assert statuses == [503, 200, 200, 429]
    assert server.count(path="/v1/disputes") == 3 and server.count(200, path="/v1/disputes/dp_1") == 1


def test_added_disputes_are_served_at_once(serve):
    server = disputes_server(serve)
    server.add_disputes([make_dispute("dp_4", "ch_4", 400, created=T0 + 3),
                         make_dispute("dp_1", "ch_1", 100, created=T0, status="lost")])  # fmt: skip
    disputes = sdk(server).v1.disputes
    assert ids(disputes.list(params={"limit": 2})) == ["dp_4", "dp_3"]
    assert disputes.retrieve("dp_1").status == "lost"


def test_an_unrecognized_url_names_both_resources(serve):
    status, _, body = get(serve(), "/v1/refunds")
    assert status == 404 and "/v1/charges and /v1/disputes" in body["error"]["message"]


def test_make_dispute_derives_currency_evidence_deadline_and_refundability():
    dispute = make_dispute("dp_1", "ch_1", 500, currency="EUR", created=T0, payment_intent="pi_1")
    assert (dispute["object"], dispute["currency"], dispute["status"], dispute["reason"]) == (
        "dispute", "eur", "needs_response", "fraudulent")  # fmt: skip
    details = dispute["evidence_details"]
    assert details["due_by"] > T0
    assert (details["has_evidence"], details["past_due"], details["submission_count"]) == (False, False, 0)
    assert (dispute["balance_transactions"], dispute["livemode"], dispute["is_charge_refundable"]) == ([], False, False)
    assert make_dispute("dp_2", "ch_2", 500, status="warning_needs_response")["is_charge_refundable"] is True


def test_make_dispute_overrides_replace_any_field_even_with_nonsense(serve):
    server = serve(disputes=[make_dispute("dp_1", "ch_1", "lots", created="later", evidence_details=None)])
    _, _, body = get(server, "/v1/disputes?charge=ch_1")
    assert [(d["amount"], d["evidence_details"], d["created"]) for d in body["data"]] == [("lots", None, "later")]


def test_make_charge_derives_paid_captured_and_refunded_fields():
    charge = make_charge("ch_1", 500, currency="JPY", amount_refunded=500)
    assert (charge["object"], charge["currency"], charge["paid"], charge["amount_captured"]) == ("charge", "jpy", True, 500)
    assert charge["refunded"] is True and charge["refunds"]["object"] == "list"
    uncaptured = make_charge("ch_2", 500, captured=False, status="pending")
    assert (uncaptured["amount_captured"], uncaptured["paid"], uncaptured["refunded"]) == (0, False, False)


def test_make_charge_serves_a_partial_capture_and_a_dispute_flag(serve):
    server = serve([make_charge("ch_1", 1000, amount_captured=600, disputed=True), make_charge("ch_2", 1000)])
    partial, whole = sdk(server).v1.charges.retrieve("ch_1"), sdk(server).v1.charges.retrieve("ch_2")
    assert (partial.amount, partial.amount_captured, partial.amount_refunded, partial.disputed) == (1000, 600, 0, True)
    assert (whole.amount_captured, whole.disputed) == (1000, False)


def test_load_charges_reads_a_json_array_or_json_lines(tmp_path):
    charges = [make_charge("ch_1", 100), make_charge("ch_2", 200)]
    array, lines = tmp_path / "charges.json", tmp_path / "charges.jsonl"
    array.write_text(json.dumps(charges))
    lines.write_text("\n".join(json.dumps(c) for c in charges) + "\n")
    assert load_charges(array) == charges == load_charges(lines)
