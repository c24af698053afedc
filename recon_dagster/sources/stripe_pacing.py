"""Pacing under Stripe's rate limits: one budget per endpoint and one for the account, shared by the
process.

Stripe counts every request against two rolling one-second limits at once: the account's (100/s in
live mode, 25/s in a sandbox) and its endpoint's (25/s by default; `GET /v1/charges` and `GET
/v1/charges/{id}` are two endpoints). A request here waits for a slot in both. Pacers are kept per
account (key mode, API base and the account's name: a connected account or an entity is its own
account), so every client and thread of the process that talks to one account draws on the same
budgets; with a `SharedBudget` (`stripe_budget`), every process does.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from urllib.parse import unquote, urlsplit

from recon_dagster.sources.stripe_budget import SharedBudget

TARGET = (
    0.95  # of each budget: the 5% left absorbs the jitter between our send times and Stripe's count
)
LIVE_LIMIT = 100.0  # requests/s for the account: Stripe's default in live mode
TEST_LIMIT = 25.0  # ... and in a sandbox (test keys)
ENDPOINT_LIMIT = 25.0  # requests/s for each endpoint by default, live or test
DEFAULT_API_BASE = "https://api.stripe.com"

_LIVE_PREFIXES = ("sk_live_", "rk_live_")
_VERSION = re.compile(r"^v\d+$")
_ID = re.compile(
    r"^[a-z][a-z0-9]*_[A-Za-z0-9_]+$"
)  # `ch_3Mml…`, `pi_1`, `txn_1`: a prefix, an underscore, the rest


def key_mode(api_key: str) -> str:
    """`live` for `sk_live_`/`rk_live_` keys; `test` for anything else (a sandbox has the lower
    limit: safe)."""
    return "live" if api_key.startswith(_LIVE_PREFIXES) else "test"


def account_limit(api_key: str) -> float:
    """Stripe's default requests/s for the key's account: 100 live, 25 in a sandbox."""
    return LIVE_LIMIT if key_mode(api_key) == "live" else TEST_LIMIT


def endpoint(method: str, url: str) -> str:
    """What Stripe counts as one endpoint: `get` + `…/v1/charges/ch_123?expand[]=x` -> `GET
    /v1/charges/{id}`.

    The segment after the version names the resource and stays; any later segment shaped like an id
    becomes `{id}`. A sub-resource or action with an underscore in its name
    (`/v1/customers/{id}/tax_ids`) is merged with its siblings that way: a shared budget is slower,
    never over a limit.
    """
    parts = urlsplit(url).path.strip("/").split("/")
    version = next((i for i, part in enumerate(parts) if _VERSION.match(part)), -1)
    names = [
        "{id}" if i > version + 1 and _ID.match(unquote(part)) else part
        for i, part in enumerate(parts)
    ]
    return f"{method.upper()} /{'/'.join(names)}"


def _rate(name: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number of requests per second, got {value!r}")
    return float(value)


class Budget:
    """One limit: slots `1 / (0.95 × limit)` apart, and no rolling second holding more than 95% of
    `limit`.

    The slots are a generic cell rate algorithm: each request takes the next slot, `interval` after
    the last, and may go up to `burst - 1` intervals early (`burst=1`: strictly even). Slots are
    taken ahead, so after a stall (GC, a busy GIL) every request whose slot passed would go at once;
    two guards on the actual sends prevent that. Sends stay half an interval apart: a late request
    delays the next by less than a slot, and the pace recovers in a few. A rolling second holds at
    most `ceil(0.95 × limit)` sends (25 -> 24): Stripe counts after the network's jitter, which may
    bunch what we spaced. Not thread-safe: `Pacer` locks.
    """

    def __init__(self, limit: float, burst: int = 1):
        self._next_slot = 0.0  # the "theoretical arrival time" of the next request
        self._last_sent = -math.inf
        self._sent: deque[float] = deque()  # send times of the last `capacity` requests
        self.configure(limit, burst)

    def configure(self, limit: float, burst: int) -> None:
        self.limit = limit
        self._interval = 1.0 / (limit * TARGET)
        self._tolerance = (burst - 1) * self._interval
        self._capacity = max(math.ceil(limit * TARGET - 1e-9), 1)

    def reserve(self, now: float) -> float:
        """Take the next slot: when this request may go."""
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        return slot - self._tolerance

    def wait(self, now: float) -> float:
        """Seconds until a send is far enough from the last one and fits in the rolling second; 0:
        now."""
        while len(self._sent) > self._capacity:  # the limit was lowered
            self._sent.popleft()
        full = len(self._sent) >= self._capacity
        return max(
            0.0,
            self._last_sent + self._interval / 2 - now,
            self._sent[0] + 1.0 - now if full else 0.0,
        )

    def record(self, now: float) -> None:
        self._last_sent = now
        self._sent.append(now)
        if len(self._sent) > self._capacity:
            self._sent.popleft()


class Pacer:
    """The budgets of one account: `limit` requests/s in all, `endpoint_limit` for each endpoint."""

    def __init__(
        self,
        limit: float,
        endpoint_limit: float = ENDPOINT_LIMIT,
        burst: int = 1,
        *,
        shared: SharedBudget | None = None,
        bucket: str = "",
    ):
        self._lock = threading.Lock()  # guards every budget; never held while sleeping
        self._account = Budget(1.0)
        self._endpoints: dict[str, Budget] = {}
        # With `shared`, the slots come from the budget every process shares (the account's
        # buckets are named `bucket`…); the guards on actual sends stay this process's.
        self.shared, self._bucket = shared, bucket
        self.configure(limit, endpoint_limit, burst)

    def configure(
        self, limit: float, endpoint_limit: float = ENDPOINT_LIMIT, burst: int = 1
    ) -> None:
        """Set the budgets; requests already waiting keep their slots, the next ones take the new
        spacing."""
        limit = _rate("requests_per_second", limit)
        endpoint_limit = _rate("endpoint_requests_per_second", endpoint_limit)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        with self._lock:
            self.limit, self.endpoint_limit, self.burst = limit, endpoint_limit, burst
            self._account.configure(limit, burst)
            for budget in self._endpoints.values():
                budget.configure(endpoint_limit, burst)

    def endpoint_rate(self) -> float:
        """The requests/s one endpoint gets: 95% of the tighter of its budget and the account's."""
        return TARGET * min(self.limit, self.endpoint_limit)

    def wait(self, method: str, url: str) -> str:
        """Block until a request may go under both its endpoint's budget and the account's; its
        endpoint."""
        name = endpoint(method, url)
        with self._lock:
            budget = self._endpoints.get(name)
            if budget is None:
                budget = self._endpoints[name] = Budget(self.endpoint_limit, self.burst)
            go = self._reserve(budget, name)
        _sleep_until(go)
        # The account's slot is taken only once the endpoint's has come: a request held back by its
        # endpoint must not hold a place in the account's queue that a request to another endpoint
        # could use.
        with self._lock:
            go = self._reserve(self._account, "*")
        _sleep_until(go)
        while True:
            with self._lock:
                now = time.monotonic()
                pause = max(budget.wait(now), self._account.wait(now))
                if not pause:
                    budget.record(now)
                    self._account.record(now)
                    return name
            time.sleep(pause)  # after a stall: the guards space out what bunched up

    def _reserve(self, budget: Budget, name: str) -> float:
        """The next slot of `budget` (this process's), or of its shared bucket: monotonic time."""
        now = time.monotonic()
        if self.shared is None:
            return budget.reserve(now)
        slot = self.shared.take(f"{self._bucket}|{name}", 1.0 / (budget.limit * TARGET))
        return now + (slot - time.time())


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# One pacer per account for the whole process: the limits are Stripe's per account, whichever client
# asks.
_pacers: dict[tuple[str, str, str, str], Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(
    api_key: str,
    api_base: str | None = None,
    *,
    requests_per_second: float | None = None,
    endpoint_requests_per_second: float = ENDPOINT_LIMIT,
    burst: int = 1,
    account: str = "default",
    shared: SharedBudget | None = None,
    shared_url: str = "",
) -> Pacer:
    """The process's pacer for this account, set to these budgets (the last client made sets them
    for all).

    `requests_per_second` None: Stripe's default for the key's mode (`account_limit`). The account
    is told apart by the key's mode, the API base and `account` (a connected account's id, or an
    entity's name): the key itself is never kept. `shared` (opened from `shared_url`): the
    budget every process shares.
    """
    limit = account_limit(api_key) if requests_per_second is None else requests_per_second
    base = (api_base or DEFAULT_API_BASE).rstrip("/")
    key = (key_mode(api_key), base, account, shared_url if shared is not None else "")
    with _pacers_lock:
        pacer = _pacers.get(key)
        if pacer is None:
            bucket = f"{key_mode(api_key)}|{base}|{account}"
            pacer = _pacers[key] = Pacer(
                limit, endpoint_requests_per_second, burst, shared=shared, bucket=bucket
            )
        else:
            pacer.configure(limit, endpoint_requests_per_second, burst)
    return pacer
