"""A local Stripe-compatible HTTP server for charges, disputes, payouts and balance transactions:
list, retrieve, auth, errors, latency, rate limits.

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
import struct
import sys
import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

# The objects it serves are built by `stripe_objects`; re-exported here, where tests have always
# found them.
from recon_dagster.testing.connect_money import ConnectSale
from recon_dagster.testing.stripe_objects import (
    DEFAULT_CREATED as DEFAULT_CREATED,
    DEFAULT_DESTINATION as DEFAULT_DESTINATION,
    PAYOUT_FIELD as PAYOUT_FIELD,
    make_balance_transaction as make_balance_transaction,
    make_charge as make_charge,
    make_dispute as make_dispute,
    make_payout as make_payout,
    payout_transactions as payout_transactions,
)

DEFAULT_API_KEY = "sk_test_recon_local"
DEFAULT_PORT = 12111
MAX_LIMIT = 100
DROPPED = 0  # the status recorded for a connection closed without a response
# What `garble_next` can do to a response, as a proxy or a broken network would.
GARBAGE = ("truncated", "html", "missing_field", "slow", "reset")
_HTML_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
)

_EXPAND = re.compile(r"^expand(\[\d*\])?$")
_KEY_PREFIX = re.compile(r"^[a-z]{2,4}_(?:test|live)_")
_RATE_LIMIT_MESSAGE = (
    "Too many requests hit the API too quickly. We recommend an exponential backoff of your "
    "requests."
)

Key = tuple[int, str]  # (created, id): the listing order, ascending; lists are served reversed
# (created, JSON body, the ids or values its kind's filters select by, its kind's `scanned`
# integers)
Entry = tuple[int, bytes, tuple[str | None, ...], tuple[int | None, ...]]


def _range_ops(field: str) -> dict[str, str]:
    """The list parameters of an integer field, as Stripe takes them: `field` exactly, or
    `field[gt]` and so on."""
    return {
        f"{field}[gt]": "gt",
        f"{field}[gte]": "gte",
        f"{field}[lt]": "lt",
        f"{field}[lte]": "lte",
        field: "eq",
    }


@dataclass(frozen=True)
class _Kind:
    """What differs between the resources served; listing, paging and errors are otherwise the
    same."""

    noun: str  # as in Stripe's "No such charge: 'ch_x'"
    url: str
    filters: tuple[
        str, ...
    ]  # list parameters matching one field's id (or value) exactly; each has its own index
    fields: tuple[str, ...] = ()  # the field each filter reads, when not the parameter's own name
    hidden: tuple[str, ...] = ()  # fields kept only for filters, never sent
    scanned: tuple[str, ...] = ()  # integer fields filtered like `created` but walked, not indexed
    id_param: str = "id"  # the `param` of the 404 for an unknown id
    expands: str | None = (
        None  # a field holding a charge id that `expand` may replace with the charge
    )

    @cached_property
    def params(self) -> frozenset[str]:
        """Every list parameter but `expand`."""
        ranges = [name for field in ("created", *self.scanned) for name in _range_ops(field)]
        return frozenset(["limit", "starting_after", "ending_before", *self.filters, *ranges])


_CHARGES = _Kind("charge", "/v1/charges", ("customer", "payment_intent"))
_DISPUTES = _Kind("dispute", "/v1/disputes", ("charge", "payment_intent"))
# Payouts are few (one a day; a few thousand at most), so an `arrival_date` filter may walk them.
_PAYOUTS = _Kind(
    "payout", "/v1/payouts", ("status", "destination"), scanned=("arrival_date",), id_param="payout"
)
# `payout` reads the hidden field: its index (payout id -> that payout's keys, sorted) pages a
# payout of 100,000 transactions by bisection alone.
_BALANCE_TRANSACTIONS = _Kind(
    "balance transaction",
    "/v1/balance_transactions",
    ("payout", "type", "source", "currency"),
    fields=(PAYOUT_FIELD, "type", "source", "currency"),
    hidden=(PAYOUT_FIELD,),
    expands="source",
)


# A platform's transfers to its connected accounts (Connect): listed by destination, each
# expandable to the charge that funded it.
_TRANSFERS = _Kind(
    "transfer", "/v1/transfers", ("destination", "source_transaction"), expands="source_transaction"
)
# Connected accounts (`GET /v1/accounts`, the platform's only).
_ACCOUNTS = _Kind("account", "/v1/accounts", (), id_param="account")
# Events: `type` is indexed; `types[]` (several types) is served from a filtered snapshot (events
# are few).
_EVENTS = _Kind("event", "/v1/events", ("type",))


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it; `status` is `DROPPED` (0) for a dropped connection."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    timestamp: float
    account: str | None = None  # the connected account (Stripe-Account) or entity it was for


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


_ENCODER = json.JSONEncoder(
    separators=(",", ":")
)  # one encoder: `json.dumps` with options builds one per call


def _dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode()


def _ref_id(value: Any) -> str | None:
    """A reference (`customer`, `charge`, `payment_intent`) as an id, whether a string or an
    expanded object."""
    # The common case first: the `Mapping` check is slow, and 100,000 objects pay it.
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def mask_key(key: str) -> str:
    """`sk_test_abcdefgh1234` -> `sk_test_****1234`, the way Stripe's error messages show keys."""
    match = _KEY_PREFIX.match(key)
    prefix = match.group(0) if match else ""
    tail = key[-4:] if len(key) - len(prefix) >= 8 else ""
    return f"{prefix}****{tail}"


class _DataSet:
    """An immutable snapshot of one kind's objects, indexed; replaced whole on change so readers
    need no lock."""

    def __init__(self, kind: _Kind, entries: dict[str, Entry]):
        self.kind, self.entries = (
            kind,
            entries,
        )  # id -> (created, JSON body, filtered ids, scanned integers)
        self.all: list[Key] = sorted((created, cid) for cid, (created, *_rest) in entries.items())
        self.by: list[dict[str, list[Key]]] = [
            {} for _ in kind.filters
        ]  # per filter: referenced id -> keys
        for key in self.all:  # already sorted, so each sub-index is too
            for index, ref in zip(self.by, entries[key[1]][2], strict=True):
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
        fields = kind.fields or kind.filters
        for position, obj in enumerate(objects, start):
            # Malformed objects are served as given (tests need them); they only need a sort key.
            oid = obj.get("id") if isinstance(obj.get("id"), str) else f"_noid_{position:09d}"
            created = _int_or_none(obj.get("created")) or 0
            refs = tuple(_ref_id(obj.get(name)) for name in fields)
            if kind.hidden:
                obj = obj.copy()
                for name in kind.hidden:
                    obj.pop(name, None)
            body = _dumps(obj)
            entries[oid] = (
                created,
                body,
                refs,
                tuple(_int_or_none(obj.get(name)) for name in kind.scanned),
            )
        return entries


def _int_param(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _ApiError(
            400,
            "invalid_request_error",
            f"Invalid integer: {text}",
            code="parameter_invalid_integer",
            param=name,
        ) from None


def _unknown(name: str) -> _ApiError:
    return _ApiError(
        400,
        "invalid_request_error",
        f"Received unknown parameter: {name}",
        code="parameter_unknown",
        param=name,
    )


def _bounds(field: str, params: dict[str, str]) -> tuple[int | None, int | None]:
    """The half-open [low, high) that `field`'s parameters select (None: unbounded); whole seconds
    make each one."""
    low = high = None
    for name, op in _range_ops(field).items():
        if name in params:
            value = _int_param(name, params[name])
            start = {"gt": value + 1, "gte": value, "eq": value}.get(op)
            stop = {"lt": value, "lte": value + 1, "eq": value + 1}.get(op)
            if start is not None:
                low = start if low is None else max(low, start)
            if stop is not None:
                high = stop if high is None else min(high, stop)
    return low, high


def _list_page(
    data: _DataSet, params: dict[str, str], expand: Callable[[bytes], bytes] | None = None
) -> bytes:
    """One page of a list: bisect to the window and cursor, never a scan of all.

    One filter pages its own index by bisection. Further filters and `scanned` ranges are checked
    while walking from the cursor only until the page is full, so each page costs what it skips, not
    the whole list.
    """
    kind = data.kind
    for name in params:
        if name not in kind.params and not _EXPAND.match(name):
            raise _unknown(name)
    limit = _int_param("limit", params["limit"]) if "limit" in params else 10
    if not 1 <= limit <= MAX_LIMIT:
        raise _ApiError(
            400,
            "invalid_request_error",
            f"Invalid limit: must be between 1 and {MAX_LIMIT}",
            param="limit",
        )
    keys = data.all
    wanted = {i: params[name] for i, name in enumerate(kind.filters) if name in params}
    if wanted:  # page the shortest of the filters' lists; the others are checked while walking it
        best = min(wanted, key=lambda i: len(data.by[i].get(wanted[i], ())))
        keys = data.by[best].get(wanted[best], [])
        del wanted[best]
    ranges = [(i, *_bounds(field, params)) for i, field in enumerate(kind.scanned)]
    ranges = [(i, low, high) for i, low, high in ranges if (low, high) != (None, None)]
    lo, hi = 0, len(keys)
    low, high = _bounds("created", params)
    if low is not None:
        lo = max(lo, bisect_left(keys, (low,)))
    if high is not None:
        hi = min(hi, bisect_left(keys, (high,)))
    if "starting_after" in params and "ending_before" in params:
        raise _ApiError(
            400,
            "invalid_request_error",
            "You may only specify one of these parameters: ending_before, starting_after.",
        )
    newer = "ending_before" in params  # the `limit` objects just newer than the cursor
    if newer:
        lo = max(lo, bisect_right(keys, _cursor(data, params, "ending_before")))
    elif "starting_after" in params:
        hi = min(hi, bisect_left(keys, _cursor(data, params, "starting_after")))
    if not wanted and not ranges:
        first, last = (lo, min(hi, lo + limit)) if newer else (max(lo, hi - limit), hi)
        page, has_more = (
            keys[first:last] if first < last else [],
            (last < hi if newer else first > lo),
        )
    else:

        def within(value: int | None, start: int | None, stop: int | None) -> bool:
            return (
                value is not None
                and (start is None or value >= start)
                and (stop is None or value < stop)
            )

        def matches(key: Key) -> bool:
            _created, _body, refs, scanned = data.entries[key[1]]
            return all(refs[i] == ref for i, ref in wanted.items()) and all(
                within(scanned[i], start, stop) for i, start, stop in ranges
            )

        walk = (keys[at] for at in (range(lo, hi) if newer else range(hi - 1, lo - 1, -1)))
        found = list(islice(filter(matches, walk), limit + 1))
        page, has_more = found[:limit], len(found) > limit
        if not newer:
            page.reverse()  # walked newest first; `page` is ascending like a slice
    bodies = [data.entries[cid][1] for _created, cid in reversed(page)]
    items = b",".join(map(expand, bodies) if expand else bodies)
    more = b"true" if has_more else b"false"
    url = kind.url.encode()
    return (
        b'{"object":"list","data":[' + items + b'],"has_more":' + more + b',"url":"' + url + b'"}'
    )


def _cursor(data: _DataSet, params: dict[str, str], name: str) -> Key:
    cid = params[name]
    if cid not in data.entries:
        raise _ApiError(
            400,
            "invalid_request_error",
            f"No such {data.kind.noun}: '{cid}'",
            code="resource_missing",
            param=name,
        )
    return (data.entries[cid][0], cid)


def _retrieve(
    data: _DataSet, cid: str, params: dict[str, str], expand: Callable[[bytes], bytes] | None = None
) -> bytes:
    for name in params:
        if not _EXPAND.match(name):
            raise _unknown(name)
    if cid not in data.entries:
        raise _ApiError(
            404,
            "invalid_request_error",
            f"No such {data.kind.noun}: '{cid}'",
            code="resource_missing",
            param=data.kind.id_param,
        )
    body = data.entries[cid][1]
    return expand(body) if expand else body


# Which data set an expandable field's id is looked up in (`StripeServer.find_object`).
_EXPANDS_TO = {"source": "charges", "source_transaction": "charges", "source_transfer": "transfers"}


def _expand(paths: list[list[str]], find: Callable[[str, str], dict | None], body: bytes) -> bytes:
    """`body` with each dotted path of fields replaced by the object it names, as Stripe's
    `expand[]` does (`source.source_transfer` expands a field of the expanded object); ids that
    `find` does not know stay ids."""
    obj = json.loads(body)

    def walk(node: Any, path: list[str]) -> None:
        if not path or not isinstance(node, dict) or path[0] not in _EXPANDS_TO:
            return
        value = node.get(path[0])
        if not isinstance(value, dict):
            value = find(_EXPANDS_TO[path[0]], _ref_id(value) or "")
            if value is None:
                return
            node[path[0]] = value
        walk(value, path[1:])

    for path in paths:
        walk(obj, path)
    return _dumps(obj)


def _endpoint(method: str, path: str) -> str:
    """What Stripe counts as one endpoint: `GET /v1/charges` (a list) or `GET /v1/charges/{id}` (any
    retrieve)."""
    parts = path.split("/")  # "", "v1", the resource, its id: every URL served has this shape
    if len(parts) == 4 and parts[3]:
        parts[3] = "{id}"
    return f"{method} {'/'.join(parts)}"


class StripeServer:
    """Serves charges, disputes, payouts and balance transactions like Stripe's API on a local port.

    `latency`, `rate_limit`, `endpoint_rate_limit`, `retry_after` and `api_key` are plain attributes
    that may be set while it runs (handler threads read each once per request); the data and logs
    are lock-protected. Like Stripe, two rolling one-second limits apply at once: `rate_limit` over
    every request and `endpoint_rate_limit` per endpoint (`GET /v1/charges` and `GET
    /v1/charges/{id}` are two); None is no limit.
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
        endpoint_rate_limit: float | None = None,
        disputes: Iterable[dict] = (),
        payouts: Iterable[dict] = (),
        balance_transactions: Iterable[dict] = (),
    ):
        self._lock = threading.Lock()
        self._charges = _DataSet.of(_CHARGES, charges)
        self._disputes = _DataSet.of(_DISPUTES, disputes)
        self._payouts = _DataSet.of(_PAYOUTS, payouts)
        self._balance_transactions = _DataSet.of(_BALANCE_TRANSACTIONS, balance_transactions)
        self._events = _DataSet.of(_EVENTS, ())
        self._transfers = _DataSet.of(_TRANSFERS, ())
        # Funds Stripe holds for connected accounts' negative balances, per currency: part of
        # `GET /v1/balance` that no balance transaction of this account moves.
        self.connect_reserved: dict[str, int] = {}
        self._event_count = 0
        self._host, self._port = host, port
        self.api_key, self.latency, self.rate_limit, self.retry_after = (
            api_key,
            latency,
            rate_limit,
            retry_after,
        )
        self.endpoint_rate_limit = endpoint_rate_limit
        self._faults: deque[int | str] = deque()
        # `hold()`: requests that arrive wait on `_gate` until `release()` (None lets them by);
        # `_holding`: every gate handed out since the last release.
        self._gate: threading.Event | None = None
        self._holding: list[threading.Event] = []
        self._held = 0
        self.slow_seconds = 5.0  # how long a `slow` garbled response waits before it answers
        self._recent: deque[float] = deque()  # accepted request times, for the rolling rate window
        self._recent_by: dict[str, deque[float]] = {}  # the same per endpoint
        self._refused = {"endpoint": 0, "global": 0}  # 429s answered by each limiter
        self._log: list[RequestRecord] = []
        # Stripe Connect: the platform's connected accounts, each its own data and its own limits
        # (`add_connected_account`); other accounts with their own keys (`add_keyed_account`).
        self._connected: dict[str, StripeServer] = {}
        self._keyed: dict[str, tuple[str, StripeServer]] = {}
        self._accounts = _DataSet.of(_ACCOUNTS, ())
        self.platform: StripeServer | None = None  # a connected account's platform
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> StripeServer:
        httpd = _HTTPServer((self._host, self._port), _Handler, bind_and_activate=False)
        httpd.request_queue_size = 256  # benchmarks open many connections at once
        try:
            httpd.server_bind()
            httpd.server_activate()
        except OSError:  # e.g. the port is taken: release the socket, let the caller choose again
            httpd.server_close()
            raise
        httpd.stripe = self
        self._httpd, self._port = httpd, httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self.release()  # no handler thread left waiting on a hold
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

    def add_payouts(self, payouts: Iterable[dict]) -> None:
        """Add payouts (a payout with an existing id replaces it)."""
        with self._lock:
            self._payouts = self._payouts.adding(payouts)

    def replace_payouts(self, payouts: Iterable[dict]) -> None:
        new = _DataSet.of(_PAYOUTS, payouts)
        with self._lock:
            self._payouts = new

    def add_balance_transactions(self, transactions: Iterable[dict]) -> None:
        """Add balance transactions (one with an existing id replaces it); each keeps its payout in
        `_payout`."""
        with self._lock:
            self._balance_transactions = self._balance_transactions.adding(transactions)

    def replace_balance_transactions(self, transactions: Iterable[dict]) -> None:
        new = _DataSet.of(_BALANCE_TRANSACTIONS, transactions)
        with self._lock:
            self._balance_transactions = new

    def add_transfers(self, transfers: Iterable[dict]) -> None:
        """Add transfers to connected accounts (one with an existing id replaces it)."""
        with self._lock:
            self._transfers = self._transfers.adding(transfers)

    def add_sale(self, sale: ConnectSale, account: str) -> None:
        """A Connect sale's objects (`connect_money`): the platform's here, the rest on the
        connected `account`."""
        self.add_charges(sale.platform_charges)
        self.add_transfers(sale.transfers)
        self.add_balance_transactions(sale.platform_transactions)
        connected = self.connected_account(account)
        connected.add_charges(sale.account_charges)
        connected.add_balance_transactions(sale.account_transactions)

    def find_object(self, kind: str, oid: str) -> dict | None:
        """The object `oid` of `kind` (`charges`, `transfers`) for an expansion: this account's,
        else its platform's (a connected account's payment names the platform's transfer)."""
        data = self._charges if kind == "charges" else self._transfers
        entry = data.entries.get(oid)
        if entry is not None:
            return json.loads(entry[1])
        return self.platform.find_object(kind, oid) if self.platform is not None else None

    # --- other accounts ---------------------------------------------------------------------------

    def add_connected_account(
        self, account_id: str, *, created: int = 1_700_000_000, **fields: Any
    ) -> StripeServer:
        """A connected account of this platform: listed by `GET /v1/accounts`, and answering the
        requests made with `Stripe-Account: account_id`. Returns it, to add its charges, payouts,
        ... to (it is not started: this server answers for it)."""
        account = self._child()
        account.platform = self
        body = {
            "id": account_id,
            "object": "account",
            "created": created,
            "type": "express",
            "charges_enabled": True,
            "payouts_enabled": True,
            **fields,
        }
        with self._lock:
            self._connected[account_id] = account
            self._accounts = self._accounts.adding([body])
        return account

    def connected_account(self, account_id: str) -> StripeServer:
        """A connected account added before, to change its data (KeyError if there is none)."""
        with self._lock:
            return self._connected[account_id]

    def add_keyed_account(self, name: str, api_key: str) -> StripeServer:
        """Another Stripe account (a separate entity) answering requests made with `api_key`;
        `name` labels its requests. Returns it, to add data to."""
        account = self._child()
        account.api_key = api_key
        with self._lock:
            self._keyed[api_key] = (name, account)
        return account

    def _child(self) -> StripeServer:
        """An account answered through this server: its own data and rate windows, this server's
        log, 429 counts and lock."""
        child = StripeServer(api_key=self.api_key)
        child._lock, child._log, child._refused = self._lock, self._log, self._refused
        return child

    def requests_for(self, account: str | None) -> list[RequestRecord]:
        """The requests made for one account (None: the platform's own)."""
        return [r for r in self.requests if r.account == account]

    # --- changes after the fact, each recorded as Stripe's event
    # --------------------------------------

    def record_event(
        self,
        type_: str,
        obj: dict,
        *,
        at: int | None = None,
        previous_attributes: dict | None = None,
    ) -> dict:
        """Record `GET /v1/events`' event of `type_` about `obj` (as it is now), at `at` (default
        now)."""
        data = {
            "object": obj,
            **({"previous_attributes": previous_attributes} if previous_attributes else {}),
        }
        with self._lock:
            self._event_count += 1
            event = {
                "id": f"evt_local{self._event_count:09d}",
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(time.time()) if at is None else at,
                "data": data,
                "livemode": False,
                "pending_webhooks": 0,
                "request": {"id": None, "idempotency_key": None},
                "type": type_,
            }
            self._events = self._events.adding([event])
        return event

    def _changed(self, data: _DataSet, oid: str, changes: dict[str, Any]) -> tuple[dict, dict]:
        """(the object as served now, the object with `changes`); KeyError for an unknown id."""
        with self._lock:
            entry = data.entries.get(oid)
        if entry is None:
            raise KeyError(f"no {data.kind.noun} {oid!r} on this server")
        before = json.loads(entry[1])
        return before, {**before, **changes}

    def update_charge(self, charge_id: str, *, at: int | None = None, **changes: Any) -> dict:
        """Change a charge as Stripe would after the fact (a refund, a capture, ...) and record its
        event: `charge.refunded` when `amount_refunded` grows, `charge.captured` when it becomes
        captured, `charge.failed` when it fails, else `charge.updated`."""
        before, after = self._changed(self._charges, charge_id, changes)
        self.add_charges([after])
        if after.get("amount_refunded", 0) > before.get("amount_refunded", 0):
            kind = "charge.refunded"
        elif after.get("captured") and not before.get("captured"):
            kind = "charge.captured"
        elif after.get("status") == "failed" and before.get("status") != "failed":
            kind = "charge.failed"
        else:
            kind = "charge.updated"
        return self.record_event(kind, after, at=at)

    def open_dispute(self, dispute: dict, *, at: int | None = None) -> dict:
        """A dispute opened (or changed) on one of the charges: the charge becomes `disputed`, and
        `charge.dispute.created` is recorded (`charge.dispute.closed` for a won or lost one)."""
        charge = _ref_id(dispute.get("charge"))
        with self._lock:
            entry = self._charges.entries.get(charge or "")
        if entry is not None:
            self.add_charges([{**json.loads(entry[1]), "disputed": True}])
        self.add_disputes([dispute])
        closed = dispute.get("status") in ("won", "lost")
        return self.record_event(
            "charge.dispute.closed" if closed else "charge.dispute.created", dispute, at=at
        )

    def update_payout(self, payout_id: str, *, at: int | None = None, **changes: Any) -> dict:
        """Change a payout as Stripe would after the fact and record its event: `payout.failed`,
        `payout.canceled` or `payout.paid` when the status becomes one, else `payout.updated`
        (with `previous_attributes`, as Stripe sends for a moved `arrival_date`)."""
        before, after = self._changed(self._payouts, payout_id, changes)
        self.add_payouts([after])
        status = after.get("status")
        kind = (
            f"payout.{status}"
            if status in ("failed", "canceled", "paid") and status != before.get("status")
            else "payout.updated"
        )
        previous = {k: before.get(k) for k in changes if before.get(k) != after.get(k)}
        return self.record_event(kind, after, at=at, previous_attributes=previous)

    def balance(self, now: int | None = None) -> dict[str, Any]:
        """`GET /v1/balance` as Stripe computes it: per currency, the net of every balance
        transaction, `available` once its `available_on` has passed (else `pending`), and
        `connect_reserved` as set on the server."""
        now = int(time.time()) if now is None else now
        sums: dict[str, dict[str, int]] = {}
        for entry in self._balance_transactions.entries.values():
            txn = json.loads(entry[1])
            currency, net = txn.get("currency"), txn.get("net")
            if not isinstance(currency, str) or not isinstance(net, int):
                continue  # a malformed transaction Stripe would never have counted
            when = txn.get("available_on")
            part = "available" if isinstance(when, int) and when <= now else "pending"
            sums.setdefault(currency.lower(), {"available": 0, "pending": 0})[part] += net
        for currency in self.connect_reserved:
            sums.setdefault(currency.lower(), {"available": 0, "pending": 0})
        body: dict[str, Any] = {"object": "balance", "livemode": False}
        for part in ("available", "pending"):
            body[part] = [
                {"amount": s[part], "currency": c, "source_types": {"card": s[part]}}
                for c, s in sorted(sums.items())
            ]
        if self.connect_reserved:
            body["connect_reserved"] = [
                {"amount": a, "currency": c.lower()}
                for c, a in sorted(self.connect_reserved.items())
            ]
        return body

    def __len__(self) -> int:
        """The number of charges (the other kinds are extra)."""
        return len(self._charges.entries)

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """Answer the next `count` requests with `status` (429 and 5xx look like Stripe's)."""
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next status must be 4xx or 5xx, got {status}")
        with self._lock:
            self._faults.extend([status] * count)

    def drop_connection_next(self, count: int = 1) -> None:
        """Close the connection of the next `count` requests without answering (a network
        failure)."""
        with self._lock:
            self._faults.extend([DROPPED] * count)

    def garble_next(self, kind: str, count: int = 1) -> None:
        """Spoil the next `count` responses: `truncated` (a 200 whose JSON stops halfway),
        `html` (a proxy's 502 page), `missing_field` (a 200 whose first object lacks `amount`),
        `slow` (answered after `slow_seconds`), `reset` (the connection reset mid-body)."""
        if kind not in GARBAGE:
            raise ValueError(f"garble_next kind must be one of {', '.join(GARBAGE)}, got {kind!r}")
        with self._lock:
            self._faults.extend([kind] * count)

    def clear_faults(self) -> int:
        """Drop the faults no request has taken yet; returns how many there were."""
        with self._lock:
            left = len(self._faults)
            self._faults.clear()
            return left

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def count(self, status: int | None = None, *, path: str | None = None) -> int:
        """How many logged requests had this status (and path); all of them when both are None."""
        return sum(
            1
            for r in self.requests
            if (status is None or r.status == status) and (path is None or r.path == path)
        )

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    # --- request handling (called from handler threads) -------------------------------------------

    def opened(self, connection: socket.socket) -> None:
        """A client connection to close when the server stops."""
        with self._lock:
            self._connections.add(connection)

    def closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def hold(self) -> None:
        """Keep every request that arrives from now on waiting (a caller stuck on Stripe) until
        `release()`; after `let_new_requests_by()`, later ones pass while those stay held."""
        with self._lock:
            self._gate = threading.Event()
            self._holding.append(self._gate)

    def let_new_requests_by(self) -> None:
        with self._lock:
            self._gate = None

    def release(self) -> None:
        """Answer every held request."""
        with self._lock:
            gates, self._gate, self._holding = self._holding, None, []
        for gate in gates:
            gate.set()

    def held(self) -> int:
        """How many requests are waiting on `hold()` now."""
        with self._lock:
            return self._held

    def wait_if_held(self) -> None:
        with self._lock:
            gate = self._gate
            if gate is None:
                return
            self._held += 1
        try:
            gate.wait(timeout=300)  # a test that never releases still ends
        finally:
            with self._lock:
                self._held -= 1

    def take_fault(self) -> int | str | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def rate_limited(self, limiter: str | None = None) -> int:
        """How many 429s the limiters answered: `endpoint`'s, `global`'s, or both (None); injected
        ones not."""
        with self._lock:
            return self._refused[limiter] if limiter else sum(self._refused.values())

    def _admit(self, method: str, path: str) -> str | None:
        """Rolling one-second windows: None if this request is within both limits, else the limiter
        refusing it."""
        now = time.monotonic()
        with self._lock:
            limits = (
                (
                    "endpoint",
                    self.endpoint_rate_limit,
                    self._recent_by.setdefault(_endpoint(method, path), deque()),
                ),
                ("global", self.rate_limit, self._recent),
            )
            for name, limit, recent in limits:
                while recent and recent[0] <= now - 1.0:
                    recent.popleft()
                if limit is not None and len(recent) >= limit:
                    self._refused[name] += 1
                    # a refused request counts in neither window: clients that back off get back in
                    return name
            for _name, _limit, recent in limits:
                recent.append(now)
            return None

    def record(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        status: int,
        account: str | None = None,
    ) -> None:
        with self._lock:
            self._log.append(RequestRecord(method, path, query, status, time.time(), account))

    def account_of(self, authorization: str | None, stripe_account: str | None) -> str | None:
        """Whose request this is, for the log: the connected account, the keyed account's name,
        or None (this account)."""
        if stripe_account:
            return stripe_account
        given = (authorization or "").removeprefix("Bearer ").strip()
        keyed = self._keyed.get(given)
        return keyed[0] if keyed else None

    def _account_for(self, authorization: str | None, stripe_account: str | None) -> StripeServer:
        """The account that answers: a connected one (by its header, for this platform's key
        only), a keyed one (by its key), or this one."""
        given = (authorization or "").removeprefix("Bearer ").strip()
        keyed = self._keyed.get(given)
        if keyed is not None:
            return keyed[1]
        if stripe_account:
            account = self._connected.get(stripe_account)
            if account is None or not secrets.compare_digest(given.encode(), self.api_key.encode()):
                raise _ApiError(
                    403,
                    "invalid_request_error",
                    f"The provided key '{mask_key(given)}' does not have access to account "
                    f"'{stripe_account}' (or that account does not exist). Application access "
                    "may have been revoked.",
                    code="account_invalid",
                )
            return account
        return self

    def _rate_limited(self) -> _ApiError:
        return _ApiError(
            429,
            "invalid_request_error",
            _RATE_LIMIT_MESSAGE,
            code="rate_limit",
            headers=[("Retry-After", str(self.retry_after))],
        )

    def fault(self, status: int) -> _ApiError:
        if status == 429:
            return self._rate_limited()
        if status >= 500:
            return _ApiError(
                status,
                "api_error",
                "An unknown error occurred (injected by the local Stripe server).",
            )
        return _ApiError(
            status, "invalid_request_error", f"Injected HTTP {status} from the local Stripe server."
        )

    def respond(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        authorization: str | None,
        expand: frozenset[str] = frozenset(),
        stripe_account: str | None = None,
    ) -> bytes:
        """The body for one request after auth and rate limiting, or raises `_ApiError`; `expand`:
        every value given; `stripe_account`: the `Stripe-Account` header."""
        target = self._account_for(authorization, stripe_account)
        if target is not self:
            # Each account has its own limits (Stripe counts per account and endpoint).
            target.rate_limit, target.endpoint_rate_limit = (
                self.rate_limit,
                self.endpoint_rate_limit,
            )
            target.retry_after = self.retry_after
            return target.respond(method, path, params, authorization, expand)
        if not authorization or not authorization.startswith("Bearer "):
            raise _ApiError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        given = authorization[len("Bearer ") :].strip()
        if not secrets.compare_digest(given.encode(), self.api_key.encode()):
            raise _ApiError(
                401, "invalid_request_error", f"Invalid API Key provided: {mask_key(given)}"
            )
        if self._admit(method, path) is not None:
            raise self._rate_limited()
        if path == "/v1/balance":
            if method != "GET":
                raise _ApiError(
                    405,
                    "invalid_request_error",
                    "This local Stripe server is read-only.",
                    headers=[("Allow", "GET")],
                )
            return _dumps(self.balance())
        if path.startswith(_ACCOUNTS.url) and self._connected:
            rest = path[len(_ACCOUNTS.url) + 1 :] if path.startswith(_ACCOUNTS.url + "/") else None
            if path == _ACCOUNTS.url:
                return _list_page(self._accounts, params, None)
            if rest and "/" not in rest:
                return _retrieve(self._accounts, unquote(rest), params, None)
        charges = self._charges  # each snapshot read once: a concurrent add cannot tear a page
        events = self._events
        types = {
            value
            for name, value in params.items()
            if name == "types[]" or re.fullmatch(r"types\[\d+\]", name)
        }
        if types and path == _EVENTS.url:  # several types at once: list a snapshot of just those
            params = {k: v for k, v in params.items() if not k.startswith("types[")}
            events = _DataSet(
                _EVENTS, {i: e for i, e in events.entries.items() if e[2][0] in types}
            )
        served = (
            charges,
            self._disputes,
            self._payouts,
            self._balance_transactions,
            self._transfers,
            events,
        )
        for data in served:
            url = data.kind.url
            rest = path[len(url) + 1 :] if path.startswith(url + "/") else None
            if path != url and (rest is None or "/" in rest):
                continue
            if method == "POST":
                raise _ApiError(
                    405,
                    "invalid_request_error",
                    "This local Stripe server is read-only.",
                    headers=[("Allow", "GET")],
                )
            # `expand[]=data.source` on a list, `expand[]=source` on one; deeper paths too.
            prefix = "data." if rest is None else ""
            asked = (
                v.removeprefix(prefix).split(".") for v in sorted(expand) if v.startswith(prefix)
            )
            paths = [path for path in asked if path[0] == data.kind.expands]
            expander = partial(_expand, paths, self.find_object) if paths else None
            if rest is None:
                return _list_page(data, params, expander)
            return _retrieve(data, unquote(rest), params, expander)
        raise _ApiError(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({method}: {path}). This local server "
            "serves /v1/charges, /v1/disputes, /v1/payouts, /v1/balance_transactions, "
            "/v1/transfers, /v1/accounts, /v1/balance and /v1/events only.",
        )


def _without_amount(body: bytes) -> bytes:
    """The response with `amount` removed from its object (a list page's first object)."""
    obj = json.loads(body)
    target = obj["data"][0] if isinstance(obj.get("data"), list) and obj["data"] else obj
    target.pop("amount", None)
    return _dumps(obj)


class _HTTPServer(ThreadingHTTPServer):
    """The HTTP server, with the `StripeServer` its handlers answer for."""

    stripe: StripeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout, a garbled answer) closes first: not worth a trace.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests session expects
    disable_nagle_algorithm = (
        True  # headers and body are two writes: without this each waits ~40 ms for an ACK
    )
    timeout = 30  # an idle kept-alive connection ends after this

    def setup(self) -> None:
        super().setup()
        self._stripe().opened(self.connection)

    def finish(self) -> None:
        self._stripe().closed(self.connection)
        super().finish()

    def _stripe(self) -> StripeServer:
        assert isinstance(self.server, _HTTPServer)
        return self.server.stripe

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # keep the connection in step
        self._handle()

    def _handle(self) -> None:
        server = self._stripe()
        url = urlsplit(self.path)
        pairs = parse_qsl(url.query, keep_blank_values=True)
        params = dict(pairs)
        expand = frozenset(
            value for name, value in pairs if _EXPAND.match(name)
        )  # `expand[]` repeats: not in `params`
        if server.latency:
            time.sleep(server.latency)  # in this handler thread, so concurrent requests overlap
        server.wait_if_held()
        fault = server.take_fault()
        if fault == DROPPED:
            server.record(self.command, url.path, params, DROPPED)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "slow":
            time.sleep(server.slow_seconds)
        status, headers = 200, ()
        try:
            if isinstance(fault, int):
                raise server.fault(fault)
            body = server.respond(
                self.command,
                url.path,
                params,
                self.headers.get("Authorization"),
                expand,
                self.headers.get("Stripe-Account"),
            )
        except _ApiError as error:
            status, body, headers = error.status, error.body, error.headers
        account = server.account_of(
            self.headers.get("Authorization"), self.headers.get("Stripe-Account")
        )
        content_type, length = "application/json", None
        if fault == "truncated":
            body = body[: len(body) // 2]
        elif fault == "html":
            status, body, content_type, headers = 502, _HTML_PAGE, "text/html", ()
        elif fault == "missing_field" and status == 200:
            body = _without_amount(body)
        elif fault == "reset":
            length, body = len(body), body[: len(body) // 2]
        server.record(self.command, url.path, params, status, account)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length or len(body)))
        self.send_header("Request-Id", "req_" + secrets.token_hex(7))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if fault == "reset":  # half the promised body, then a TCP reset (SO_LINGER 0)
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    def log_message(self, format: str, *args: Any) -> None:  # `format`: the stdlib's name
        pass  # tests read `server.requests`; stderr stays quiet


def load_charges(path: str | Path) -> list[dict]:
    """Charges (or any kind served) from a JSON array (or a Stripe list object) or a JSON-lines
    file.

    Keys are kept as written, so a balance transaction's `_payout` survives a file round trip.
    """
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
    parser = argparse.ArgumentParser(
        description="Serve charges (and more) from files like Stripe's API, until Ctrl-C."
    )
    parser.add_argument(
        "--data", required=True, help="JSON array or JSON-lines file of charge objects"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument(
        "--rate-limit", type=float, default=None, help="requests per second in all before 429s"
    )
    parser.add_argument(
        "--endpoint-rate-limit",
        type=float,
        default=None,
        help="requests per second to each endpoint (GET /v1/charges, GET /v1/charges/{id}, ...) "
        "before 429s",
    )
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument(
        "--disputes",
        default=None,
        help="JSON array or JSON-lines file of dispute objects (default: stripe_disputes.json "
        "beside --data)",
    )
    parser.add_argument(
        "--payouts",
        default=None,
        help="JSON array or JSON-lines file of payout objects (default: stripe_payouts.json beside "
        "--data)",
    )
    parser.add_argument(
        "--balance-transactions",
        default=None,
        help="JSON array or JSON-lines file of balance transactions, each with its payout's id "
        f"under '{PAYOUT_FIELD}' (default: stripe_balance_transactions.json beside --data)",
    )
    args = parser.parse_args(argv)

    def beside_data(given: str | None, name: str) -> list[dict]:
        """The objects of `given`, else of `name` beside `--data` if it exists; the same file
        formats as charges."""
        beside = Path(args.data).with_name(name)
        path = given or (beside if beside.exists() else None)
        return load_charges(path) if path else []

    disputes = beside_data(args.disputes, "stripe_disputes.json")
    payouts = beside_data(args.payouts, "stripe_payouts.json")
    transactions = beside_data(args.balance_transactions, "stripe_balance_transactions.json")
    server = StripeServer(
        load_charges(args.data),
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        latency=args.latency,
        rate_limit=args.rate_limit,
        endpoint_rate_limit=args.endpoint_rate_limit,
        disputes=disputes,
        payouts=payouts,
        balance_transactions=transactions,
    ).start()
    # The key is masked even here: logs never carry secrets.
    print(
        f"Serving {len(server)} charges, {len(disputes)} disputes, {len(payouts)} payouts and "
        f"{len(transactions)} balance transactions at {server.url} "
        f"(API key {mask_key(args.api_key)}); Ctrl-C stops.",
        flush=True,
    )
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
