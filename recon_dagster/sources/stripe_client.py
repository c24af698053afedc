"""The Stripe client every Stripe source uses: the official SDK, paced and retried, with errors
that say what failed and never carry the key.

- `make_client`: a `StripeClient` that also retries 429 (honouring `Retry-After`) and waits for
  the account's and the endpoint's budgets before each request (`stripe_pacing`).
- `call`: one call, with SDK errors turned into `StripeUnavailableError` naming the request.
- `list_all`: every object of a list endpoint, page by page; `page_of` checks one page.
- `run_all`: the same call for many items on a few threads, results in order.
"""

import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
import stripe

from recon_dagster.retry_after import parse_retry_after
from recon_dagster.sources.stripe_budget import shared_budget
from recon_dagster.sources.stripe_pacing import ENDPOINT_LIMIT, Pacer, pacer_for

PAGE_SIZE = 100  # Stripe's maximum page size: fewest requests
# Seconds; a longer Retry-After is capped so a run fails in minutes, not hours.
MAX_RETRY_AFTER = 60.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_NOT_JSON = "Invalid response body from API:"
UNREADABLE_RETRIES = 2
_KEY = re.compile(r"\b([a-z]{2,4}_(?:test|live)_)[A-Za-z0-9_]*?([A-Za-z0-9]{4})\b")

# What the last request made in this thread did: read when turning an SDK error into ours.
_last_request = threading.local()
# The pacer each client of `make_client` sends through, so that listing can size its concurrency
# to the budget (the SDK keeps its HTTP client private).
_PACERS: weakref.WeakKeyDictionary[stripe.StripeClient, Pacer] = weakref.WeakKeyDictionary()


class StripeDataError(ValueError):
    """Stripe returned an object we cannot reconcile; the message names the object and field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class StripeUnavailableError(ValueError):
    """Stripe could not be reached or refused us; the message names the request and the reason."""


def mask_secrets(text: str) -> str:
    """`sk_live_abc…wxyz` -> `sk_live_****wxyz` anywhere in `text`, as Stripe's own messages do."""
    return _KEY.sub(r"\1****\2", text)


# Hand-written on purpose: the SDK retries connection errors, 409 and 5xx with backoff, but not
# 429 (unless Stripe sends `Stripe-Should-Retry: true`), and it has no client-side rate limiter.
# We keep the SDK's retry loop and backoff and add only those two things.
class _RetryingRequestsClient(stripe.RequestsClient):
    """`RequestsClient` that also retries 429 (honouring Retry-After) and waits for its pacer
    before each request."""

    def __init__(self, *, timeout: float, pacer: Pacer):
        super().__init__(timeout=timeout)
        self._pacer = pacer  # shared with every client of the same account (`pacer_for`)

    def _before(self, method: str, url: str) -> None:
        # Every attempt, retries included, counts against both budgets.
        self._pacer.wait(method, url)
        parts = urlsplit(url)
        _last_request.api_base = f"{parts.scheme}://{parts.netloc}"

    def request(self, method, url, headers, post_data=None):
        self._before(method, url)
        return super().request(method, url, headers, post_data)

    def request_stream(self, method, url, headers, post_data=None):
        self._before(method, url)
        return super().request_stream(method, url, headers, post_data)

    def _should_retry(self, response, api_connection_error, num_retries, max_network_retries):
        _last_request.retries = num_retries
        self._thread_local.retry_after = None
        retry = super()._should_retry(
            response, api_connection_error, num_retries, max_network_retries
        )
        if response is None:
            # The SDK retries connect errors and timeouts, but not a body cut off mid-way (a
            # reset connection): our requests are all GETs, so reading the page again is safe.
            cause = api_connection_error.__cause__ if api_connection_error else None
            broken = isinstance(
                cause,
                (
                    requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError,
                ),
            )
            return retry or (broken and num_retries < (max_network_retries or 0))
        _body, status, headers = response
        if not retry and status == 429 and num_retries < (max_network_retries or 0):
            retry = (headers or {}).get("stripe-should-retry") != "false"
        if retry:
            self._thread_local.retry_after = _capped_retry_after((headers or {}).get("retry-after"))
        return retry

    def _sleep_time_seconds(self, num_retries: int) -> float:
        retry_after = getattr(self._thread_local, "retry_after", None)
        self._thread_local.retry_after = None
        if retry_after is None:
            return super()._sleep_time_seconds(num_retries)
        return retry_after


def _capped_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), capped; None if absent or
    unreadable."""
    seconds = parse_retry_after(value)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER)


def make_client(
    api_key: str,
    *,
    api_base: str | None = None,
    max_network_retries: int = 4,
    requests_per_second: float | None = None,
    endpoint_requests_per_second: float = ENDPOINT_LIMIT,
    timeout: float = 30,
    burst: int = 1,
    account: str = "default",
    stripe_account: str | None = None,
    budget_url: str | None = None,
) -> stripe.StripeClient:
    """A `StripeClient` that retries 429s as well as network errors and 5xx, and paces itself.

    Every client of one account in this process shares its budgets: `requests_per_second` in all
    (None: Stripe's default for the key, 100 live or 25 test) and `endpoint_requests_per_second`
    per endpoint, each aimed at 95%, with up to `burst` requests' catch-up after an idle moment
    (1: strictly even spacing); with `budget_url` (`stripe_budget`), every process shares them.
    `account` names the account's budgets; `stripe_account` is the connected account every
    request is made for (the `Stripe-Account` header).
    """
    pacer = pacer_for(
        api_key,
        api_base,
        requests_per_second=requests_per_second,
        endpoint_requests_per_second=endpoint_requests_per_second,
        burst=burst,
        account=stripe_account or account,
        shared=shared_budget(budget_url) if budget_url else None,
        shared_url=budget_url or "",
    )
    client = stripe.StripeClient(
        api_key,
        stripe_account=stripe_account,
        base_addresses={"api": api_base.rstrip("/")} if api_base else None,
        max_network_retries=max_network_retries,
        http_client=_RetryingRequestsClient(timeout=timeout, pacer=pacer),
    )
    _PACERS[client] = pacer
    return client


def pacer_of(client: stripe.StripeClient) -> Pacer | None:
    """The pacer a `make_client` client sends through; None for another client."""
    return _PACERS.get(client)


def split_window(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    """[low, high) epoch seconds cut into at most `parts` equal, non-empty sub-windows, listed
    concurrently (one pagination each)."""
    parts = max(1, min(parts, high - low))
    bounds = [low + (high - low) * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def ceil_seconds(moment: datetime) -> int:
    """Whole epoch seconds, rounded up, computed exactly (no float)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone: pass an aware datetime")
    seconds, rest = divmod(moment - _EPOCH, _SECOND)
    return seconds + (1 if rest else 0)


def call(context: str, request: Callable[[], Any], *, missing_ok: bool = False) -> Any:
    """Run `request`, turning SDK errors into `StripeUnavailableError` with a key-free message
    that says what was being done (`context`).

    With `missing_ok`, a 404 returns None: a retrieve of an unknown object is an answer, not a
    failure.
    """
    attempt = 0
    while True:
        _last_request.retries = None
        _last_request.api_base = None
        try:
            return request()
        except stripe.StripeError as exc:
            # A 200 whose body is not JSON (cut off on the way) is not retried by the SDK, which
            # retries by status only; every request here is a read, so asking again is safe.
            if _unreadable_200(exc) and attempt < UNREADABLE_RETRIES:
                attempt += 1
                time.sleep(0.25 * 2**attempt)
                continue
            if (
                missing_ok
                and isinstance(exc, stripe.InvalidRequestError)
                and exc.http_status == 404
            ):
                return None
            # `from None`: the SDK error's args hold the raw response body; keep only our masked
            # summary.
            raise StripeUnavailableError(_describe(context, exc)) from None


def _unreadable(exc: stripe.StripeError) -> bool:
    """Did Stripe (or something on the way) answer with a body that is not JSON?"""
    return isinstance(exc, stripe.APIError) and (exc.user_message or "").startswith(_NOT_JSON)


def _unreadable_200(exc: stripe.StripeError) -> bool:
    return _unreadable(exc) and exc.http_status == 200


def get(client: stripe.StripeClient, context: str, path: str, **params: Any) -> Any:
    """`GET path` through the client, as plain JSON (the SDK's objects cost ~0.4 ms each)."""
    return call(context, lambda: client.raw_request("get", path, **params)).data


def page_of(body: Any, context: str) -> tuple[list[Any], bool]:
    """`data` and `has_more` of a list page, or `StripeUnavailableError` if it is not one."""
    if isinstance(body, dict):
        data, has_more = body.get("data"), body.get("has_more")
        if isinstance(data, list) and isinstance(has_more, bool):
            return data, has_more
    raise StripeUnavailableError(f"Stripe sent something other than a list page while {context}.")


def list_all(
    client: stripe.StripeClient, path: str, params: dict[str, Any], context: str
) -> list[Any]:
    """Every object of a list endpoint, page by page (`starting_after` the page's last id; a
    page whose last object has no id ends the listing)."""
    out: list[Any] = []
    cursor = None
    while True:
        page = {**params, "limit": PAGE_SIZE, **({"starting_after": cursor} if cursor else {})}
        data, has_more = page_of(get(client, context, path, **page), context)
        out += data
        last = data[-1] if data else None
        cursor = last.get("id") if isinstance(last, dict) else None
        if not has_more or not isinstance(cursor, str) or not cursor:
            return out


def run_all(
    work: Callable[[Any], Any], items: Sequence[Any] | range, max_workers: int
) -> list[Any]:
    """`work` on each item, results in input order; the first error stops whatever has not
    started yet."""
    if len(items) <= 1:
        return [work(item) for item in items]
    pool = ThreadPoolExecutor(
        max_workers=max(1, min(max_workers, len(items))), thread_name_prefix="stripe"
    )
    try:
        futures = [pool.submit(work, item) for item in items]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _describe(context: str, exc: stripe.StripeError) -> str:
    """`Stripe <what happened> while <context> [request id]: <Stripe's masked message>. <what to
    do>`"""
    retries = getattr(_last_request, "retries", None)
    after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries is not None else ""
    status = f"HTTP {exc.http_status}" if exc.http_status else "no HTTP response"
    hint = ""
    if isinstance(exc, stripe.AuthenticationError):
        kind, hint = f"authentication failed ({status})", "Check STRIPE_API_KEY."
    elif isinstance(exc, stripe.PermissionError):
        kind, hint = f"permission denied ({status})", "The key needs read access to charges."
    elif isinstance(exc, stripe.RateLimitError):
        kind = f"rate limited ({status}){after}"
        hint = (
            "Lower STRIPE_REQUESTS_PER_SECOND or STRIPE_ENDPOINT_REQUESTS_PER_SECOND, "
            "or retry later."
        )
    elif isinstance(exc, stripe.APIConnectionError):
        where = getattr(_last_request, "api_base", None) or "the Stripe API"
        kind = f"unreachable at {where}{after}"
    elif _unreadable(exc):
        kind = f"sent an unreadable response ({status}){after}"
    elif isinstance(exc, stripe.APIError):
        kind = f"server error ({status}){after}"
    else:
        kind = f"refused the request ({status}, {type(exc).__name__})"
    message = " ".join((exc.user_message or "").split())
    if isinstance(exc, stripe.APIConnectionError):  # the SDK's text is boilerplate; keep the cause
        network = re.search(r"\(Network error: (\w+)", message)
        message = network.group(1) if network else ""
    elif message.startswith(_NOT_JSON):  # a proxy's page or a cut-off body: say so, briefly
        body = message[len(_NOT_JSON) :].strip()
        message = f"the response was not Stripe's JSON ({len(body)} characters from {body[:40]!r})"
    request_id = f" [request {exc.request_id}]" if exc.request_id else ""
    text = f"Stripe {kind} while {context}{request_id}"
    text += f": {mask_secrets(message).rstrip('.')}." if message else "."
    return f"{text} {hint}".rstrip()
