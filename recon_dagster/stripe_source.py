"""Stripe charges for one time window, through the official SDK, as a validated `CHARGES_SCHEMA` frame.

No Dagster here: assets call `make_client` and `fetch_charges`. Errors come out as two kinds the
caller can act on: `StripeDataError` (Stripe sent something we refuse to reconcile) and
`StripeUnavailableError` (we could not get the data). Neither ever contains the API key.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import polars as pl
import stripe

from recon_dagster.core.frames import CHARGES_SCHEMA, empty_charges
from recon_dagster.money import CurrencyError, normalize_currency

PAGE_SIZE = 100  # Stripe's maximum page size: fewest requests
MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is capped so a run fails in minutes, not hours
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SECOND = timedelta(seconds=1)
_KEY = re.compile(r"\b([a-z]{2,4}_(?:test|live)_)[A-Za-z0-9_]*?([A-Za-z0-9]{4})\b")
_MISSING = object()

# What the last request made in this thread did: read when turning an SDK error into ours.
_last_request = threading.local()


class StripeDataError(ValueError):
    """Stripe returned a charge we cannot reconcile; the message names the charge and the field."""


class StripeUnavailableError(ValueError):
    """Stripe could not be reached or refused us; the message names the window and the reason."""


def mask_secrets(text: str) -> str:
    """`sk_live_abc…wxyz` -> `sk_live_****wxyz` anywhere in `text`, as Stripe's own messages do."""
    return _KEY.sub(r"\1****\2", text)


# Hand-written on purpose: the SDK retries connection errors, 409 and 5xx with backoff, but not 429
# (unless Stripe sends `Stripe-Should-Retry: true`), and it has no client-side rate limiter. We keep
# the SDK's retry loop and backoff and add only those two things.
class _RetryingRequestsClient(stripe.RequestsClient):
    """`RequestsClient` that also retries 429 (honouring Retry-After) and paces requests."""

    def __init__(self, *, timeout: float, requests_per_second: float | None):
        super().__init__(timeout=timeout)
        self._interval = 1.0 / requests_per_second if requests_per_second else 0.0
        self._pace_lock = threading.Lock()
        self._next_slot = 0.0

    def _pace(self) -> None:
        """Even spacing (no burst): Stripe's limit is a rolling window, so bursts would hit it."""
        if not self._interval:
            return
        with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        if slot > now:
            time.sleep(slot - now)

    def _before(self, url: str) -> None:
        self._pace()  # every attempt, retries included, counts against the limit
        parts = urlsplit(url)
        _last_request.api_base = f"{parts.scheme}://{parts.netloc}"

    def request(self, method, url, headers, post_data=None):
        self._before(url)
        return super().request(method, url, headers, post_data)

    def request_stream(self, method, url, headers, post_data=None):
        self._before(url)
        return super().request_stream(method, url, headers, post_data)

    def _should_retry(self, response, api_connection_error, num_retries, max_network_retries):
        _last_request.retries = num_retries
        self._thread_local.retry_after = None
        retry = super()._should_retry(response, api_connection_error, num_retries, max_network_retries)
        if response is None:
            return retry
        _body, status, headers = response
        if not retry and status == 429 and num_retries < (max_network_retries or 0):
            retry = (headers or {}).get("stripe-should-retry") != "false"
        if retry:
            self._thread_local.retry_after = _parse_retry_after((headers or {}).get("retry-after"))
        return retry

    def _sleep_time_seconds(self, num_retries: int) -> float:
        retry_after = getattr(self._thread_local, "retry_after", None)
        self._thread_local.retry_after = None
        return super()._sleep_time_seconds(num_retries) if retry_after is None else retry_after


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), capped; None if absent or bad."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def make_client(
    api_key: str,
    *,
    api_base: str | None = None,
    max_network_retries: int = 4,
    requests_per_second: float | None = None,
    timeout: float = 30,
) -> stripe.StripeClient:
    """A `StripeClient` that retries 429s as well as network errors and 5xx, and paces itself."""
    http = _RetryingRequestsClient(timeout=timeout, requests_per_second=requests_per_second)
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base.rstrip("/")} if api_base else None,
        max_network_retries=max_network_retries,
        http_client=http,
    )


def _ceil_seconds(moment: datetime) -> int:
    """Whole epoch seconds, rounded up, computed exactly (no float)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone: pass an aware datetime")
    seconds, rest = divmod(moment - _EPOCH, _SECOND)
    return seconds + (1 if rest else 0)


def fetch_charges(
    client: stripe.StripeClient, start: datetime, end: datetime, *, slices: int = 1, max_workers: int = 8
) -> pl.DataFrame:
    """Every charge created in [start, end), newest first, in `CHARGES_SCHEMA`.

    Stripe's `created` is whole seconds, so `gte=ceil(start), lt=ceil(end)` selects exactly the
    charges with start <= created < end, whole-second bounds or not. `slices > 1` splits the window
    into contiguous sub-windows listed concurrently (one pagination each).
    """
    low, high = _ceil_seconds(start), _ceil_seconds(end)
    if low > high:
        raise ValueError(f"window start {start.isoformat()} is after its end {end.isoformat()}")
    if slices < 1:
        raise ValueError(f"slices must be at least 1, got {slices}")
    context = f"listing charges created in [{start.isoformat()}, {end.isoformat()})"
    parts = min(slices, max(high - low, 1))
    bounds = [low + (high - low) * i // parts for i in range(parts + 1)]

    def one_slice(i: int) -> pl.DataFrame:
        if bounds[i] >= bounds[i + 1]:
            return empty_charges()
        params = {"created": {"gte": bounds[i], "lt": bounds[i + 1]}, "limit": PAGE_SIZE}
        return _calling_stripe(context, lambda: _to_frame(client.v1.charges.list(params=params).auto_paging_iter()))

    frames = _run_all(one_slice, range(parts), max_workers)
    frame = pl.concat(frames) if len(frames) > 1 else frames[0]
    # A charge is in exactly one slice, but a charge listed twice must never count twice.
    return frame.unique(subset="id", keep="first", maintain_order=True).sort(
        ["created", "id"], descending=True
    )


def retrieve_charges(
    client: stripe.StripeClient, ids: Iterable[str], *, max_workers: int = 8
) -> tuple[pl.DataFrame, list[str]]:
    """The charges with these ids (in the order given) and the ids Stripe does not know (404)."""
    wanted = list(dict.fromkeys(ids))

    def one(charge_id: str) -> Any:
        call = lambda: client.v1.charges.retrieve(charge_id)  # noqa: E731
        return _calling_stripe(f"retrieving charge {charge_id}", call, missing_ok=True)

    found = _run_all(one, wanted, max_workers)
    missing = [cid for cid, charge in zip(wanted, found) if charge is None]
    return _to_frame(charge for charge in found if charge is not None), missing


def _run_all(work: Callable[[Any], Any], items: Sequence[Any] | range, max_workers: int) -> list[Any]:
    """Results in input order; the first error stops whatever has not started yet."""
    if len(items) <= 1:
        return [work(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items))), thread_name_prefix="stripe")
    try:
        futures = [pool.submit(work, item) for item in items]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _calling_stripe(context: str, call: Callable[[], Any], *, missing_ok: bool = False) -> Any:
    """Run `call`, turning SDK errors into `StripeUnavailableError` with a key-free message.

    With `missing_ok`, a 404 returns None: a retrieve of an unknown charge is an answer, not a failure.
    """
    _last_request.retries = None
    _last_request.api_base = None
    try:
        return call()
    except stripe.StripeError as exc:
        if missing_ok and isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 404:
            return None
        # `from None`: the SDK error's args hold the raw response body; keep only our masked summary.
        raise StripeUnavailableError(_describe(context, exc)) from None


def _describe(context: str, exc: stripe.StripeError) -> str:
    """`Stripe <what happened> while <context> [request id]: <Stripe's masked message>. <what to do>`"""
    retries = getattr(_last_request, "retries", None)
    after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries is not None else ""
    status = f"HTTP {exc.http_status}" if exc.http_status else "no HTTP response"
    hint = ""
    if isinstance(exc, stripe.AuthenticationError):
        kind, hint = f"authentication failed ({status})", "Check STRIPE_API_KEY."
    elif isinstance(exc, stripe.PermissionError):
        kind, hint = f"permission denied ({status})", "The key needs read access to charges."
    elif isinstance(exc, stripe.RateLimitError):
        kind, hint = f"rate limited ({status}){after}", "Lower STRIPE_REQUESTS_PER_SECOND or retry later."
    elif isinstance(exc, stripe.APIConnectionError):
        kind = f"unreachable at {getattr(_last_request, 'api_base', None) or 'the Stripe API'}{after}"
    elif isinstance(exc, stripe.APIError):
        kind = f"server error ({status}){after}"
    else:
        kind = f"refused the request ({status}, {type(exc).__name__})"
    message = " ".join((exc.user_message or "").split())
    if isinstance(exc, stripe.APIConnectionError):  # the SDK's text is boilerplate; keep the cause
        network = re.search(r"\(Network error: (\w+)", message)
        message = network.group(1) if network else ""
    request_id = f" [request {exc.request_id}]" if exc.request_id else ""
    text = f"Stripe {kind} while {context}{request_id}"
    text += f": {mask_secrets(message).rstrip('.')}." if message else "."
    return f"{text} {hint}".rstrip()


_COLUMNS = list(CHARGES_SCHEMA)


def _to_frame(charges: Iterable[Any]) -> pl.DataFrame:
    """Validate each charge as it arrives and keep only plain column lists, not SDK objects."""
    columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    for position, charge in enumerate(charges):
        for name, value in zip(_COLUMNS, _row(charge, position)):
            columns[name].append(value)
    created = pl.Series("created", columns.pop("created"), dtype=pl.Int64) * 1_000_000
    frame = pl.DataFrame(columns, schema={k: v for k, v in CHARGES_SCHEMA.items() if k != "created"})
    return frame.with_columns(created.cast(CHARGES_SCHEMA["created"])).select(_COLUMNS)


def _field(charge: Any, name: str) -> Any:
    try:
        return charge[name]
    except (KeyError, TypeError):
        return _MISSING


def _row(charge: Any, position: int) -> tuple[Any, ...]:
    """One charge as a tuple in `_COLUMNS` order, or `StripeDataError` naming charge and field."""
    cid = _field(charge, "id")
    who = f"Stripe charge {cid}" if isinstance(cid, str) and cid else f"Stripe charge at position {position}"

    def bad(name: str, expected: str) -> StripeDataError:
        value = _field(charge, name)
        shown = "missing" if value is _MISSING else repr(value)[:60]
        return StripeDataError(f"{who}: {name!r} is {shown}, expected {expected}")

    if not (isinstance(cid, str) and cid):
        raise bad("id", "a charge id such as ch_...")
    amounts = {}
    for name in ("amount", "amount_captured", "amount_refunded"):
        value = _field(charge, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(name, "a non-negative integer number of minor units")
        amounts[name] = value
    for name in ("amount_captured", "amount_refunded"):
        if amounts[name] > amounts["amount"]:
            raise bad(name, f"at most the charge amount {amounts['amount']}")
    try:
        currency = normalize_currency(_field(charge, "currency"))
    except CurrencyError:
        raise bad("currency", "a three-letter ISO 4217 code") from None
    created = _field(charge, "created")
    if isinstance(created, bool) or not isinstance(created, int):
        raise bad("created", "a Unix timestamp in whole seconds")
    status = _field(charge, "status")
    if not isinstance(status, str):
        raise bad("status", "a string such as succeeded")
    flags = []
    for name in ("paid", "captured", "refunded"):
        if not isinstance(_field(charge, name), bool):
            raise bad(name, "true or false")
        flags.append(_field(charge, name))
    refs = []
    for name in ("payment_intent", "customer"):
        value = _field(charge, name)
        value = None if value is _MISSING else value
        if value is not None and not isinstance(value, str):
            value = _field(value, "id")  # an expanded object
            if not isinstance(value, str):
                raise bad(name, "an id string, an expanded object with an id, or null")
        refs.append(value)
    return (cid, amounts["amount"], amounts["amount_captured"], amounts["amount_refunded"], currency, status,
            *flags, created, *refs)  # fmt: skip
