"""Stripe charges: a time window's, by id, or a PaymentIntent's, through the official SDK, as
validated `CHARGES_SCHEMA` frames.

No Dagster here. A charge that fails validation is kept as an invalid row (named, with the field
and the reason); errors of the API come out as `StripeUnavailableError` (`stripe_client`).
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import polars as pl
import stripe

from recon_dagster.core.frames import CHARGES_SCHEMA, empty_charges
from recon_dagster.money import CurrencyError, is_iso_currency, normalize_currency
from recon_dagster.sources.stripe_client import (
    PAGE_SIZE,
    StripeDataError,
    StripeUnavailableError,
    call,
    ceil_seconds,
    get,
    pacer_of,
    page_of,
    run_all,
    split_window,
)

_MISSING = object()


def fetch_charges(
    client: stripe.StripeClient,
    start: datetime,
    end: datetime,
    *,
    slices: int | None = 1,
    max_workers: int = 8,
    skip: Callable[[Any], bool] | None = None,
) -> pl.DataFrame:
    """Every charge created in [start, end), newest first, in `CHARGES_SCHEMA`; `skip`: charges
    left out as they are read (Connect: another account's sales, `stripe_connect`).

    Stripe's `created` is whole seconds, so `gte=ceil(start), lt=ceil(end)` selects exactly the
    charges with start <= created < end, whole-second bounds or not.

    Pages come through the SDK's `raw_request` (its HTTP client, auth, retries, pacing and error
    types) but are read as plain JSON straight into column lists: the SDK's `StripeObject`s cost
    ~0.4 ms a charge under the GIL, which caps a process near 2,500 charges/s however many threads.

    - `slices=1`: one pagination, sequential.
    - `slices=N`: the window is cut into N equal sub-windows listed concurrently (one pagination
      each, at most `max_workers` at a time).
    - `slices=None` (automatic): the first page of the whole window decides. Without `has_more`
      that one request is the answer; otherwise what is left of the window is cut into as many
      sub-windows as there are idle workers, and from then on whenever a worker falls idle (its
      sub-window done) the next page fetched by a busy one hands off the older half of its
      remaining time range. Equal time cuts would leave workers idle on a day with quiet nights
      and busy afternoons; halving on demand keeps `max_workers` paginations in flight to the end,
      so the client's rate limiter, not latency, sets the pace. A small window costs one request.
    """
    low, high = ceil_seconds(start), ceil_seconds(end)
    if low > high:
        raise ValueError(f"window start {start.isoformat()} is after its end {end.isoformat()}")
    if slices is not None and slices < 1:
        raise ValueError(f"slices must be at least 1 or None (automatic), got {slices}")
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, got {max_workers}")
    if low == high:
        return empty_charges()
    context = f"listing charges created in [{start.isoformat()}, {end.isoformat()})"
    lister = _Lister(
        client,
        context,
        max_workers=max_workers if slices != 1 else 1,
        split=slices is None,
        skip=skip,
    )
    with _cyclic_gc_paused():
        if slices is None or slices == 1:
            frames = lister.run([(low, high)])
        else:
            frames = lister.run(split_window(low, high, slices))
    # A charge is in exactly one sub-window, but a charge listed twice must never count twice.
    return as_listing(*frames)


def as_listing(*frames: pl.DataFrame) -> pl.DataFrame:
    """Charges from one or several listings as one listing gives them: each id once (its first
    row), newest first by (created, id).

    Pages come newest first and a listing's sub-windows are put in order, so usually this only
    checks: de-duplicating or sorting a day's frame copies every column, which at 1M charges left
    ~400 MB in Polars' allocator for nothing. Both are done when the check says so.
    """
    if not frames:
        return empty_charges()
    frame = pl.concat([f.select(_COLUMNS) for f in frames], rechunk=False)
    if frame.select(pl.col("id").n_unique()).item() != frame.height:
        frame = frame.unique(subset="id", keep="first", maintain_order=True)
    order = frame.select(pl.arg_sort_by(["created", "id"], descending=True)).to_series()
    if order.is_sorted():  # a permutation in ascending order is the identity
        return frame
    return frame[order]


@contextmanager
def _cyclic_gc_paused():
    """Pause Python's cyclic garbage collector while pages are parsed.

    Each page makes thousands of short-lived, acyclic dicts; reference counting frees them, but
    the cyclic collector's passes over them stall every paging thread (measured: about 5% of the
    rate-limited throughput). Restored afterwards, errors included.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Lister:
    """Paginates sub-windows of `GET /v1/charges` on up to `max_workers` threads.

    A task is `(low, high, cursor)`: charges with low <= created < high, older than the charge
    `cursor` (Stripe's `starting_after`) when there is one. With `split`, a task with pages left
    gives the older part of its range to a new task whenever a worker is idle.
    """

    def __init__(
        self,
        client: stripe.StripeClient,
        context: str,
        *,
        max_workers: int,
        split: bool,
        skip: Callable[[Any], bool] | None = None,
    ):
        self._client, self._context, self._max_workers, self._split = (
            client,
            context,
            max_workers,
            split,
        )
        self._skip = skip
        pacer = pacer_of(client)
        self._rate = (
            pacer.endpoint_rate() if pacer is not None else None
        )  # requests/s the pacer lets through
        self._latency: float | None = (
            None  # the quickest round trip seen: the network's share of a request
        )
        self._lock = threading.Lock()
        self._active = 0  # tasks submitted and not yet finished
        self._all_done = threading.Condition(self._lock)
        self._results: list[_Batches] = []
        self._error: BaseException | None = None
        self._pool: ThreadPoolExecutor | None = None

    def run(self, windows: list[tuple[int, int]]) -> list[pl.DataFrame]:
        if self._max_workers == 1 and len(windows) == 1 and not self._split:
            batches = _Batches(windows[0][1])
            self._paginate(windows[0][0], windows[0][1], None, batches)
            return batches.frames()
        self._pool = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="stripe")
        try:
            with self._lock:
                for low, high in windows:
                    self._submit(low, high, None)
                while self._active:
                    self._all_done.wait()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._error is not None:
            raise self._error
        # Sub-windows are disjoint: newest window first keeps the pages' newest-first order.
        ordered = sorted(self._results, key=lambda batches: batches.high, reverse=True)
        return [frame for batches in ordered for frame in batches.frames()]

    def _submit(self, low: int, high: int, cursor: str | None) -> None:
        """Start a task; the caller holds the lock."""
        assert self._pool is not None
        self._active += 1
        self._pool.submit(self._task, low, high, cursor)

    def _task(self, low: int, high: int, cursor: str | None) -> None:
        rows = _Batches(high)
        try:
            self._paginate(low, high, cursor, rows)
        except BaseException as exc:  # handed to the caller of `run`
            with self._lock:
                if self._error is None:
                    self._error = exc
        finally:
            with self._lock:
                self._results.append(rows)
                self._active -= 1
                self._all_done.notify_all()

    def _paginate(self, low: int, high: int, cursor: str | None, rows: _Batches) -> None:
        """List one task's range page by page into `rows`, handing off older parts when asked.

        Every page asks for the same `created` window, as the SDK's auto-pagination does; the cursor
        moves through it. `top` tracks what is left: low <= created < top, older than the cursor.
        """
        top = high
        while True:
            if self._error is not None:
                return  # another task failed: stop asking Stripe
            params: dict[str, Any] = {"created": {"gte": low, "lt": high}, "limit": PAGE_SIZE}
            if cursor is not None:
                params["starting_after"] = cursor
            sent = time.monotonic()
            page = get(self._client, self._context, "/v1/charges", **params)
            took = time.monotonic() - sent
            with self._lock:
                if self._latency is None or took < self._latency:
                    self._latency = took
            data, has_more = page_of(page, self._context)
            skip = self._skip
            rows.add(data, skip)
            if not has_more or not data:
                return
            cursor, oldest = _page_position(data[-1], self._context)
            span, top = top - oldest, oldest + 1  # seconds this page covered; what is left
            if self._split and top - low >= 2:
                low = self._hand_off(low, top, span)

    def _hand_off(self, low: int, high: int, span: int) -> int:
        """Give [low, cut) to new tasks if workers are idle and it is worth it; our new `low`."""
        with self._lock:
            idle = self._useful_workers() - self._active
            if idle <= 0 or self._error is not None:
                return low
            # Pages left at the density of the page just read; one page left is not worth a split.
            pages_left = (high - low) / max(span, 1)
            parts = min(idle + 1, high - low, max(int(pages_left), 1))
            if parts < 2:
                return low
            cuts = [low + (high - low) * i // parts for i in range(parts)]
            for i in range(parts - 1):
                self._submit(cuts[i], cuts[i + 1], None)
            return cuts[-1]

    def _useful_workers(self) -> int:
        """Paginations worth running at once: enough to keep the paced rate busy through the
        network's latency (rate × latency, with half again for jitter, plus one), at most
        `max_workers`. Each extra one costs a part-filled last page, so at 50 ms three are plenty
        where Stripe's real 300 ms wants eight."""
        if self._rate is None or self._latency is None:
            return self._max_workers
        return min(self._max_workers, math.ceil(self._rate * self._latency * 1.5) + 1)


# Charges a pagination keeps as Python tuples before they become a frame (`_Batches`). Up to 8
# paginations run at once (`max_workers`), so a listing holds at most ~20,000 charges as Python
# objects: 20,000 per pagination held up to 160,000 and left ~50 MiB more in the heap at the
# peak of a 1M-charge day (bench_pipeline_memory.py).
BATCH_ROWS = 2_500


class _Batches:
    """One pagination's charges, as frames of up to `BATCH_ROWS` rows: a charge lives as a Python
    tuple only until its batch is full, so a day of millions of charges never holds millions of
    Python objects."""

    def __init__(self, high: int) -> None:
        self.high = high  # the end of the pagination's window, which orders the paginations
        self._rows: list[tuple[Any, ...]] = []
        self._frames: list[pl.DataFrame] = []
        self._count = 0  # charges read, for the position an invalid charge is named by

    def add(self, page: list[Any], skip: Callable[[Any], bool] | None) -> None:
        for charge in page:
            if skip is None or not skip(charge):
                self._rows.append(charge_row(charge, self._count))
                self._count += 1
        if len(self._rows) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._frames.append(rows_to_frame(self._rows))
            self._rows = []

    def frames(self) -> list[pl.DataFrame]:
        self._flush()
        return self._frames


def _page_position(last: Any, context: str) -> tuple[str, int]:
    """The cursor (id) and `created` of a page's last charge: paging needs both to be sound."""
    cid, created = _field(last, "id"), _field(last, "created")
    if (
        not (isinstance(cid, str) and cid)
        or isinstance(created, bool)
        or not isinstance(created, int)
    ):
        raise StripeUnavailableError(
            "Stripe sent a page whose last charge has no usable id and created time while "
            f"{context}."
        )
    return cid, created


def retrieve_charges(
    client: stripe.StripeClient,
    ids: Iterable[str],
    *,
    max_workers: int = 8,
    skip: Callable[[Any], bool] | None = None,
) -> tuple[pl.DataFrame, list[str]]:
    """The charges with these ids (in the order given) and the ids Stripe does not know (404);
    `skip`: charges that count as unknown here (Connect: another account's sale)."""
    wanted = list(dict.fromkeys(ids))
    found = retrieve_objects(client, wanted, max_workers=max_workers)
    if skip is not None:
        found = [None if charge is None or skip(charge) else charge for charge in found]
    missing = [cid for cid, charge in zip(wanted, found, strict=True) if charge is None]
    return _to_frame(charge for charge in found if charge is not None), missing


def retrieve_objects(
    client: stripe.StripeClient, ids: list[str], *, max_workers: int = 8
) -> list[Any]:
    """The SDK's charge object of each id, in order (None where Stripe does not know it)."""

    def one(charge_id: str) -> Any:
        return call(
            f"retrieving charge {charge_id}",
            lambda: client.v1.charges.retrieve(charge_id),
            missing_ok=True,
        )

    return run_all(one, ids, max_workers)


def charges_of_intents(
    client: stripe.StripeClient,
    intents: Iterable[str],
    *,
    max_workers: int = 8,
    skip: Callable[[Any], bool] | None = None,
) -> pl.DataFrame:
    """Every charge of these PaymentIntents (`GET /v1/charges?payment_intent=`), whenever
    created; `skip`: charges left out (Connect: another account's sales)."""
    wanted = list(dict.fromkeys(intents))

    def one(intent: str) -> list[tuple[Any, ...]]:
        context = f"listing the charges of PaymentIntent {intent}"
        page = get(client, context, "/v1/charges", payment_intent=intent, limit=PAGE_SIZE)
        data, _ = page_of(page, context)  # an intent's attempts fit one page
        return [
            charge_row(charge, i)
            for i, charge in enumerate(data)
            if skip is None or not skip(charge)
        ]

    return rows_to_frame([row for rows in run_all(one, wanted, max_workers) for row in rows])


_COLUMNS = list(CHARGES_SCHEMA)
_CREATED_AT = _COLUMNS.index("created")


def _to_frame(charges: Iterable[Any]) -> pl.DataFrame:
    """Validate each charge as it arrives and keep only plain column values, not SDK objects."""
    return rows_to_frame([charge_row(charge, position) for position, charge in enumerate(charges)])


def rows_to_frame(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    """Rows from `_row` (in `_COLUMNS` order) as a `CHARGES_SCHEMA` frame."""
    if not rows:
        return empty_charges()
    columns = dict(zip(_COLUMNS, (list(c) for c in zip(*rows, strict=True)), strict=True))
    created = pl.Series("created", columns.pop("created"), dtype=pl.Int64) * 1_000_000
    frame = pl.DataFrame(
        columns, schema={k: v for k, v in CHARGES_SCHEMA.items() if k != "created"}
    )
    return frame.with_columns(created.cast(CHARGES_SCHEMA["created"])).select(_COLUMNS)


def _field(charge: Any, name: str) -> Any:
    try:
        return charge[name]
    except (KeyError, TypeError):
        return _MISSING


_VALID_TAIL = (
    None,
) * 6  # dispute_* (filled in by `attach_disputes`), invalid_column, invalid_reason


def charge_row(charge: Any, position: int) -> tuple[Any, ...]:
    """One charge as a tuple in `_COLUMNS` order. A charge that fails validation is kept as an
    invalid row (its id and created time when it has them, the field and the reason), so one bad
    object is listed in the report instead of failing the day."""
    try:
        return _valid_row(charge, position)
    except StripeDataError as exc:
        cid, created = _field(charge, "id"), _field(charge, "created")
        row: list[Any] = [None] * len(_COLUMNS)
        row[0] = cid if isinstance(cid, str) and cid else None
        row[_CREATED_AT] = (
            created if isinstance(created, int) and not isinstance(created, bool) else None
        )
        row[-2], row[-1] = exc.field, str(exc)
        return tuple(row)


def _valid_row(charge: Any, position: int) -> tuple[Any, ...]:
    """One valid charge, or `StripeDataError` naming charge and field."""
    cid = _field(charge, "id")
    who = (
        f"Stripe charge {cid}"
        if isinstance(cid, str) and cid
        else f"Stripe charge at position {position}"
    )

    def bad(name: str, expected: str) -> StripeDataError:
        value = _field(charge, name)
        shown = "missing" if value is _MISSING else repr(value)[:60]
        return StripeDataError(f"{who}: {name!r} is {shown}, expected {expected}", field=name)

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
    if not is_iso_currency(currency):
        raise bad("currency", "an ISO 4217 currency code")
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
    disputed = _field(charge, "disputed")
    if disputed is _MISSING:
        disputed = False  # objects built by hand (fixtures, mirrors) may leave it out
    elif not isinstance(disputed, bool):
        raise bad("disputed", "true or false")
    return (
        cid,
        amounts["amount"],
        amounts["amount_captured"],
        amounts["amount_refunded"],
        currency,
        status,
        *flags,
        created,
        *refs,
        disputed,
        *_VALID_TAIL,
    )
