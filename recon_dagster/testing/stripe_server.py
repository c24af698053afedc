"""A local Stripe-compatible HTTP server for charges and disputes: list, retrieve, auth, errors, latency, rate limits.

Tests, the demo and benchmarks point the official `stripe` SDK at it (`base_addresses={"api": url}`)
so that the SDK's own encoding, pagination and retry code runs against Stripe-shaped responses.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import socket
import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_API_KEY = "sk_test_recon_local"
DEFAULT_PORT = 12111
# A fixed default `created` (2024-01-01T00:00:00Z) keeps fixtures deterministic.
DEFAULT_CREATED = 1_704_067_200
MAX_LIMIT = 100
DROPPED = 0  # the status recorded for a connection closed without a response

_CREATED_OPS = {"created[gt]": "gt", "created[gte]": "gte", "created[lt]": "lt", "created[lte]": "lte", "created": "eq"}
_PAGING_PARAMS = {"limit", "starting_after", "ending_before", *_CREATED_OPS}
_EXPAND = re.compile(r"^expand(\[\d*\])?$")
_KEY_PREFIX = re.compile(r"^[a-z]{2,4}_(?:test|live)_")
_RATE_LIMIT_MESSAGE = (
    "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."
)

Key = tuple[int, str]  # (created, id): the listing order, ascending; lists are served reversed
Entry = tuple[int, bytes, tuple[str | None, ...]]  # (created, JSON body, the ids its kind's filters select by)


@dataclass(frozen=True)
class _Kind:
    """What differs between the resources served; listing, paging and errors are otherwise the same."""

    noun: str  # as in Stripe's "No such charge: 'ch_x'"
    url: str
    filters: tuple[str, ...]  # fields holding another object's id; each is a list parameter with its own index


_CHARGES = _Kind("charge", "/v1/charges", ("customer", "payment_intent"))
_DISPUTES = _Kind("dispute", "/v1/disputes", ("charge", "payment_intent"))


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it; `status` is `DROPPED` (0) for a dropped connection."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    timestamp: float


class _ApiError(Exception):
    """A Stripe-style error response, raised inside request handling."""

    def __init__(self, status: int, type_: str, message: str, *, code=None, param=None, headers=()):
        super().__init__(message)
        error = {"type": type_, "message": message}
        if code:
            error["code"] = code
        if param:
            error["param"] = param
        self.status, self.body, self.headers = status, _dumps({"error": error}), tuple(headers)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _ref_id(value: Any) -> str | None:
    """A reference (`customer`, `charge`, `payment_intent`) as an id, whether a string or an expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


def mask_key(key: str) -> str:
    """`sk_test_abcdefgh1234` -> `sk_test_****1234`, the way Stripe's error messages show keys."""
    match = _KEY_PREFIX.match(key)
    prefix = match.group(0) if match else ""
    tail = key[-4:] if len(key) - len(prefix) >= 8 else ""
    return f"{prefix}****{tail}"


class _DataSet:
    """An immutable snapshot of one kind's objects, indexed; replaced whole on change so readers need no lock."""

    def __init__(self, kind: _Kind, entries: dict[str, Entry]):
        self.kind, self.entries = kind, entries  # id -> (created, JSON body, referenced ids in `kind.filters` order)
        self.all: list[Key] = sorted((created, cid) for cid, (created, *_rest) in entries.items())
        self.by: list[dict[str, list[Key]]] = [{} for _ in kind.filters]  # per filter: referenced id -> keys
        for key in self.all:  # already sorted, so each sub-index is too
            for index, ref in zip(self.by, entries[key[1]][2]):
                if ref:
                    index.setdefault(ref, []).append(key)

    @classmethod
    def of(cls, kind: _Kind, objects: Iterable[dict]) -> _DataSet:
        return cls(kind, cls.entries_of(kind, objects))

    def adding(self, objects: Iterable[dict]) -> _DataSet:
        """A new snapshot with `objects` added (one with an existing id replaces it)."""
        entries = dict(self.entries)
        entries.update(self.entries_of(self.kind, objects, start=len(entries)))
        return _DataSet(self.kind, entries)

    @staticmethod
    def entries_of(kind: _Kind, objects: Iterable[dict], start: int = 0) -> dict[str, Entry]:
        entries = {}
        for position, obj in enumerate(objects, start):
            # Malformed objects are served as given (tests need them); they only need a sort key.
            oid = obj.get("id") if isinstance(obj.get("id"), str) else f"_noid_{position:09d}"
            created = obj.get("created")
            created = created if isinstance(created, int) and not isinstance(created, bool) else 0
            entries[oid] = (created, _dumps(obj), tuple(_ref_id(obj.get(name)) for name in kind.filters))
        return entries


def _int_param(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _ApiError(400, "invalid_request_error", f"Invalid integer: {text}", code="parameter_invalid_integer", param=name) from None


def _unknown(name: str) -> _ApiError:
    return _ApiError(400, "invalid_request_error", f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


def _list_page(data: _DataSet, params: dict[str, str]) -> bytes:
    """One page of `GET /v1/charges` or `/v1/disputes`: bisect to the window and cursor, never a scan of all."""
    for name in params:
        if name not in _PAGING_PARAMS and name not in data.kind.filters and not _EXPAND.match(name):
            raise _unknown(name)
    limit = _int_param("limit", params["limit"]) if "limit" in params else 10
    if not 1 <= limit <= MAX_LIMIT:
        raise _ApiError(400, "invalid_request_error", f"Invalid limit: must be between 1 and {MAX_LIMIT}", param="limit")
    keys = data.all
    wanted = {i: params[name] for i, name in enumerate(data.kind.filters) if name in params}
    if wanted:
        keys = min((data.by[i].get(ref, []) for i, ref in wanted.items()), key=len)
        if len(wanted) > 1:  # several filters: walk the shortest of their lists, never the whole data set
            keys = [k for k in keys if all(data.entries[k[1]][2][i] == ref for i, ref in wanted.items())]
    lo, hi = 0, len(keys)
    for name, op in _CREATED_OPS.items():
        if name in params:
            # `created` is whole seconds, so every filter is a half-open [low, high) on integers.
            value = _int_param(name, params[name])
            low = {"gt": value + 1, "gte": value, "eq": value}.get(op)
            high = {"lt": value, "lte": value + 1, "eq": value + 1}.get(op)
            if low is not None:
                lo = max(lo, bisect_left(keys, (low,)))
            if high is not None:
                hi = min(hi, bisect_left(keys, (high,)))
    if "starting_after" in params and "ending_before" in params:
        raise _ApiError(400, "invalid_request_error", "You may only specify one of these parameters: ending_before, starting_after.")
    if "ending_before" in params:  # the `limit` objects just newer than the cursor
        lo = max(lo, bisect_right(keys, _cursor(data, params, "ending_before")))
        first, last = lo, min(hi, lo + limit)
        has_more = last < hi
    else:
        if "starting_after" in params:
            hi = min(hi, bisect_left(keys, _cursor(data, params, "starting_after")))
        first, last = max(lo, hi - limit), hi
        has_more = first > lo
    page = keys[first:last] if first < last else []
    items = b",".join(data.entries[cid][1] for _created, cid in reversed(page))
    more = b"true" if has_more else b"false"
    url = data.kind.url.encode()
    return b'{"object":"list","data":[' + items + b'],"has_more":' + more + b',"url":"' + url + b'"}'


def _cursor(data: _DataSet, params: dict[str, str], name: str) -> Key:
    cid = params[name]
    if cid not in data.entries:
        raise _ApiError(400, "invalid_request_error", f"No such {data.kind.noun}: '{cid}'", code="resource_missing", param=name)
    return (data.entries[cid][0], cid)


def _retrieve(data: _DataSet, cid: str, params: dict[str, str]) -> bytes:
    for name in params:
        if not _EXPAND.match(name):
            raise _unknown(name)
    if cid not in data.entries:
        raise _ApiError(404, "invalid_request_error", f"No such {data.kind.noun}: '{cid}'", code="resource_missing", param="id")
    return data.entries[cid][1]


class StripeServer:
    """Serves charges and disputes like Stripe's API on a local port.

    `latency`, `rate_limit`, `retry_after` and `api_key` are plain attributes that may be set while
    it runs (handler threads read each once per request); the data and logs are lock-protected.
    """

    def __init__(
        self,
        charges: Iterable[dict] = (),
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        rate_limit: float | None = None,
        retry_after: int = 1,
        disputes: Iterable[dict] = (),
    ):
        self._lock = threading.Lock()
        self._charges = _DataSet.of(_CHARGES, charges)
        self._disputes = _DataSet.of(_DISPUTES, disputes)
        self._host, self._port = host, port
        self.api_key, self.latency, self.rate_limit, self.retry_after = api_key, latency, rate_limit, retry_after
        self._faults: deque[int] = deque()
        self._recent: deque[float] = deque()  # accepted request times, for the rolling rate window
        self._log: list[RequestRecord] = []
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> StripeServer:
        httpd = ThreadingHTTPServer((self._host, self._port), _Handler, bind_and_activate=False)
        httpd.request_queue_size = 256  # benchmarks open many connections at once
        try:
            httpd.server_bind()
            httpd.server_activate()
        except OSError:  # e.g. the port is taken: release the socket, let the caller choose again
            httpd.server_close()
            raise
        httpd.stripe = self  # type: ignore[attr-defined]
        self._httpd, self._port = httpd, httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:  # close kept-alive client connections too, so a stopped server is gone
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> StripeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    # --- data and options -------------------------------------------------------------------------

    def add_charges(self, charges: Iterable[dict]) -> None:
        """Add charges (a charge with an existing id replaces it)."""
        with self._lock:
            self._charges = self._charges.adding(charges)

    def replace_charges(self, charges: Iterable[dict]) -> None:
        new = _DataSet.of(_CHARGES, charges)
        with self._lock:
            self._charges = new

    def add_disputes(self, disputes: Iterable[dict]) -> None:
        """Add disputes (a dispute with an existing id replaces it)."""
        with self._lock:
            self._disputes = self._disputes.adding(disputes)

    def replace_disputes(self, disputes: Iterable[dict]) -> None:
        new = _DataSet.of(_DISPUTES, disputes)
        with self._lock:
            self._disputes = new

    def __len__(self) -> int:
        """The number of charges (disputes are extra)."""
        return len(self._charges.entries)

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """Answer the next `count` requests with `status` (429 and 5xx look like Stripe's)."""
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next status must be 4xx or 5xx, got {status}")
        with self._lock:
            self._faults.extend([status] * count)

    def drop_connection_next(self, count: int = 1) -> None:
        """Close the connection of the next `count` requests without answering (a network failure)."""
        with self._lock:
            self._faults.extend([DROPPED] * count)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def count(self, status: int | None = None, *, path: str | None = None) -> int:
        """How many logged requests had this status (and path); all of them when both are None."""
        return sum(
            1 for r in self.requests if (status is None or r.status == status) and (path is None or r.path == path)
        )

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # --- request handling (called from handler threads) -------------------------------------------

    def _take_fault(self) -> int | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _admit(self) -> bool:
        """Rolling one-second window: True if this request is within `rate_limit`."""
        now = time.monotonic()
        with self._lock:
            if self.rate_limit is None:
                return True
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                return False  # a refused request does not count: clients that back off get back in
            self._recent.append(now)
            return True

    def _record(self, method: str, path: str, query: dict[str, str], status: int) -> None:
        with self._lock:
            self._log.append(RequestRecord(method, path, query, status, time.time()))

    def _rate_limited(self) -> _ApiError:
        return _ApiError(429, "invalid_request_error", _RATE_LIMIT_MESSAGE, code="rate_limit",
                         headers=[("Retry-After", str(self.retry_after))])  # fmt: skip

    def _fault(self, status: int) -> _ApiError:
        if status == 429:
            return self._rate_limited()
        if status >= 500:
            return _ApiError(status, "api_error", "An unknown error occurred (injected by the local Stripe server).")
        return _ApiError(status, "invalid_request_error", f"Injected HTTP {status} from the local Stripe server.")

    def _respond(self, method: str, path: str, params: dict[str, str], authorization: str | None) -> bytes:
        """The body for one request after auth and rate limiting, or raises `_ApiError`."""
        if not authorization or not authorization.startswith("Bearer "):
            raise _ApiError(401, "invalid_request_error",
                            "You did not provide an API key. You need to provide your API key in the Authorization "
                            "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")  # fmt: skip
        given = authorization[len("Bearer "):].strip()
        if not secrets.compare_digest(given.encode(), self.api_key.encode()):
            raise _ApiError(401, "invalid_request_error", f"Invalid API Key provided: {mask_key(given)}")
        if not self._admit():
            raise self._rate_limited()
        for data in (self._charges, self._disputes):  # each snapshot read once: a concurrent add cannot tear a page
            url = data.kind.url
            rest = path[len(url) + 1:] if path.startswith(url + "/") else None
            if path != url and (rest is None or "/" in rest):
                continue
            if method == "POST":
                raise _ApiError(405, "invalid_request_error", "This local Stripe server is read-only.", headers=[("Allow", "GET")])
            return _list_page(data, params) if rest is None else _retrieve(data, unquote(rest), params)
        raise _ApiError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}). "
                        "This local server serves /v1/charges and /v1/disputes only.")  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests session expects
    disable_nagle_algorithm = True  # headers and body are two writes: without this each waits ~40 ms for an ACK
    timeout = 30  # an idle kept-alive connection ends after this

    def setup(self) -> None:
        super().setup()
        with self.server.stripe._lock:  # type: ignore[attr-defined]
            self.server.stripe._connections.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        with self.server.stripe._lock:  # type: ignore[attr-defined]
            self.server.stripe._connections.discard(self.connection)  # type: ignore[attr-defined]
        super().finish()

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # keep the connection in step
        self._handle()

    def _handle(self) -> None:
        server: StripeServer = self.server.stripe  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if server.latency:
            time.sleep(server.latency)  # in this handler thread, so concurrent requests overlap
        fault = server._take_fault()
        if fault == DROPPED:
            server._record(self.command, url.path, params, DROPPED)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, headers = 200, ()
        try:
            if fault is not None:
                raise server._fault(fault)
            body = server._respond(self.command, url.path, params, self.headers.get("Authorization"))
        except _ApiError as error:
            status, body, headers = error.status, error.body, error.headers
        server._record(self.command, url.path, params, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-Id", "req_" + secrets.token_hex(7))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # tests read `server.requests`; stderr stays quiet


def make_charge(
    id: str,  # noqa: A002 - Stripe's field name
    amount: int,
    currency: str = "usd",
    created: int = DEFAULT_CREATED,
    status: str = "succeeded",
    captured: bool = True,
    amount_refunded: int = 0,
    customer: str | None = None,
    payment_intent: str | None = None,
    amount_captured: int | None = None,
    disputed: bool = False,
    **overrides: Any,
) -> dict:
    """A full charge object as Stripe's API returns it; `overrides` replace any field (even with nonsense).

    `amount_captured` below `amount` is a partial capture. The uncaptured rest is not counted in
    `amount_refunded`, which stays what the caller gives: reconciliation nets captured minus refunded.
    """
    suffix = id.split("_", 1)[-1]
    if amount_captured is None:
        amount_captured = amount if captured else 0
    charge = {
        "id": id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount_captured,
        "amount_refunded": amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": f"txn_{suffix}" if captured and status == "succeeded" else None,
        "billing_details": {
            "address": {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None},
            "email": None,
            "name": None,
            "phone": None,
        },
        "calculated_statement_descriptor": "RECON DEMO",
        "captured": captured,
        "created": created,
        "currency": currency.lower(),
        "customer": customer,
        "description": None,
        "disputed": disputed,
        "failure_code": "card_declined" if status == "failed" else None,
        "failure_message": "Your card was declined." if status == "failed" else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "network_status": "declined_by_network" if status == "failed" else "approved_by_network",
            "reason": "generic_decline" if status == "failed" else None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "The bank did not return any further details." if status == "failed" else "Payment complete.",
            "type": "issuer_declined" if status == "failed" else "authorized",
        },
        "paid": status == "succeeded",
        "payment_intent": payment_intent,
        "payment_method": f"pm_{suffix}",
        "payment_method_details": {
            "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2030, "funding": "credit",
                     "last4": "4242", "network": "visa"},  # fmt: skip
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/test/{suffix}",
        "refunded": isinstance(amount, int) and amount > 0 and amount_refunded == amount,
        "refunds": {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": f"/v1/charges/{id}/refunds"},
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }
    charge.update(overrides)
    return charge


# Every evidence field Stripe returns, all null until evidence is submitted.
_EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
    "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
    "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation", "duplicate_charge_explanation",
    "duplicate_charge_id", "product_description", "receipt", "refund_policy", "refund_policy_disclosure",
    "refund_refusal_explanation", "service_date", "service_documentation", "shipping_address", "shipping_carrier",
    "shipping_date", "shipping_documentation", "shipping_tracking_number", "uncategorized_file", "uncategorized_text",
)  # fmt: skip
EVIDENCE_DAYS = 7  # how long after a dispute opens its evidence is due (Stripe's is 7 to 21 days, by network)


def make_dispute(
    id: str,  # noqa: A002 - Stripe's field name
    charge: str,
    amount: int,
    currency: str = "usd",
    status: str = "needs_response",
    reason: str = "fraudulent",
    created: int = DEFAULT_CREATED,
    payment_intent: str | None = None,
    **overrides: Any,
) -> dict:
    """A full dispute object as Stripe's API returns it; `overrides` replace any field (even with nonsense).

    Statuses: `warning_needs_response`, `warning_under_review`, `warning_closed` (an inquiry, which
    may become a chargeback), `needs_response`, `under_review`, `won`, `lost`, `prevented`.
    """
    inquiry = isinstance(status, str) and status.startswith("warning_")
    # Evidence sent: a dispute under review, or one won (a lost one is as often accepted unanswered).
    answered = status in ("warning_under_review", "under_review", "won")
    dispute = {
        "id": id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge,
        "created": created,
        "currency": currency.lower(),
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(_EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": created + EVIDENCE_DAYS * 86_400 if isinstance(created, int) else None,
            "enhanced_eligibility": {},
            "has_evidence": answered,
            "past_due": False,
            "submission_count": 1 if answered else 0,
        },
        # Only an inquiry leaves the charge refundable; a chargeback has already taken the money back.
        "is_charge_refundable": inquiry,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment_intent,
        "payment_method_details": {
            "card": {"brand": "visa", "case_type": "inquiry" if inquiry else "chargeback", "network_reason_code": None},
            "type": "card",
        },
        "reason": reason,
        "status": status,
    }
    dispute.update(overrides)
    return dispute


def load_charges(path: str | Path) -> list[dict]:
    """Charges from a JSON array (or a Stripe list object) or a JSON-lines file."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None  # not one JSON document: read it as JSON lines below
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return data["data"] if isinstance(data.get("data"), list) else [data]
    charges = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                charges.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number} is not JSON ({exc.msg})") from None
    return charges


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve charges from a file like Stripe's API, until Ctrl-C.")
    parser.add_argument("--data", required=True, help="JSON array or JSON-lines file of charge objects")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second before 429s")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--disputes", default=None,
                        help="JSON array or JSON-lines file of dispute objects (default: stripe_disputes.json beside --data)")
    args = parser.parse_args(argv)
    beside = Path(args.data).with_name("stripe_disputes.json")
    disputes_path = args.disputes or (beside if beside.exists() else None)
    disputes = load_charges(disputes_path) if disputes_path else []  # the same file formats
    server = StripeServer(load_charges(args.data), api_key=args.api_key, host=args.host, port=args.port,
                          latency=args.latency, rate_limit=args.rate_limit, disputes=disputes).start()  # fmt: skip
    # The key is masked even here: logs never carry secrets.
    print(f"Serving {len(server)} charges and {len(disputes)} disputes at {server.url} "
          f"(API key {mask_key(args.api_key)}); Ctrl-C stops.", flush=True)  # fmt: skip
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
