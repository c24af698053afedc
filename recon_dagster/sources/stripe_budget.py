"""Each Stripe account's request budgets shared by every process and run of a deployment.

Stripe counts an account's requests whichever process sends them, so four runs that each pace
themselves to 25/s would send 100/s together. Here a budget is a row per bucket (an account, or
an account's endpoint) holding the next free slot; one atomic upsert takes the next slot, in the
database every process already shares: PostgreSQL when the report store is there, else a SQLite
file beside the DuckDB store (SQLite's file locking serialises the processes of one machine).

Written by hand because Dagster's concurrency pools limit how many steps run at once, not how
many requests they send per second, and none of the rate-limit libraries share a slot schedule
across processes through a database we already have.
"""

import sqlite3
import threading
import time
from pathlib import Path
from typing import LiteralString, Protocol, cast

import psycopg

from recon_dagster.settings import redact_url

TABLE = "recon_stripe_budget"
# One statement: the slot after the last one taken, or now if the bucket was idle.
_TAKE = (
    f"INSERT INTO {TABLE} (bucket, next_at) VALUES ({{p}}, {{p}}) "
    f"ON CONFLICT (bucket) DO UPDATE SET next_at = {{max}}({TABLE}.next_at, {{p}}) + {{p}} "
    "RETURNING next_at"
)


# How long opening the budget file waits for another process that is setting it up.
SETUP_WAIT_SECONDS = 30.0


class BudgetUnavailableError(RuntimeError):
    """The shared budget's database could not be used; the message names it (without secrets)."""


class SharedBudget(Protocol):
    def take(self, bucket: str, interval: float) -> float:
        """Take `bucket`'s next slot, `interval` seconds after the last one taken by anyone;
        the wall-clock time (`time.time()`) at which the request may go."""
        ...


class _SqliteBudget:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._setup(time.monotonic() + SETUP_WAIT_SECONDS)
        self._sql = _TAKE.format(p="?", max="max")

    def _setup(self, deadline: float) -> None:
        """WAL mode and the table. Two processes opening a new budget file at once (two syncs,
        chaos case 7) can get "database is locked" from the journal-mode switch at once, without
        SQLite's busy timeout: that one is waited out here, with backoff."""
        delay = 0.01
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                # A slot lost to a power cut is harmless.
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} "
                    "(bucket TEXT PRIMARY KEY, next_at REAL NOT NULL)"
                )
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def take(self, bucket: str, interval: float) -> float:
        with self._lock:
            now = time.time()
            try:
                [(next_at,)] = self._conn.execute(
                    self._sql, (bucket, now + interval, now, interval)
                )
            except sqlite3.Error as exc:  # e.g. the disk is full
                raise BudgetUnavailableError(
                    f"The shared Stripe budget at sqlite:///{self._path} failed "
                    f"(RECON_STRIPE_BUDGET_URL): {type(exc).__name__}: {exc}"
                ) from None
        return next_at - interval


class _PostgresBudget:
    def __init__(self, url: str):
        self._lock = threading.Lock()
        self._url = url
        self._conn = self._connect()
        # Built from the constants above only.
        self._sql: LiteralString = cast(LiteralString, _TAKE.format(p="%s", max="GREATEST"))

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} "
                "(bucket TEXT PRIMARY KEY, next_at DOUBLE PRECISION NOT NULL)"
            )
        except psycopg.errors.UniqueViolation:
            pass  # another process created it at the same moment
        return conn

    def take(self, bucket: str, interval: float) -> float:
        with self._lock:
            for attempt in (1, 2):  # a dropped connection (a server restart) is reopened once
                try:
                    now = time.time()
                    params = (bucket, now + interval, now, interval)
                    row = self._conn.execute(self._sql, params).fetchone()
                    break
                except psycopg.OperationalError as exc:
                    if attempt == 2:
                        raise BudgetUnavailableError(
                            f"The shared Stripe budget at {redact_url(self._url)} failed "
                            f"(RECON_STRIPE_BUDGET_URL): {type(exc).__name__}"
                        ) from None
                    self._conn.close()
                    self._conn = self._connect()
        assert row is not None
        return row[0] - interval


_budgets: dict[str, SharedBudget] = {}
_budgets_lock = threading.Lock()


def shared_budget(url: str) -> SharedBudget:
    """The process's connection to the budget at `url` (`sqlite:///path` or `postgresql://…`)."""
    with _budgets_lock:
        budget = _budgets.get(url)
        if budget is None:
            budget = _budgets[url] = _open(url)
        return budget


def _open(url: str) -> SharedBudget:
    try:
        if url.startswith("sqlite:///"):
            return _SqliteBudget(Path(url.removeprefix("sqlite:///")))
        return _PostgresBudget(url)
    except (sqlite3.Error, OSError) as exc:
        # SQLite's and the OS's messages name no secret and say what went wrong (a full disk).
        raise BudgetUnavailableError(
            f"The shared Stripe budget at {redact_url(url)} could not be opened "
            f"(RECON_STRIPE_BUDGET_URL): {type(exc).__name__}: {exc}"
        ) from None
    except psycopg.Error as exc:
        raise BudgetUnavailableError(
            f"The shared Stripe budget at {redact_url(url)} could not be opened "
            f"(RECON_STRIPE_BUDGET_URL): {type(exc).__name__}"
        ) from None


def budget_beside(store_url: str) -> str:
    """Where the budget lives by default: the PostgreSQL report store itself, or a SQLite file
    beside the DuckDB one."""
    if store_url.startswith(("postgresql://", "postgres://")):
        return store_url
    path = Path(store_url.removeprefix("duckdb:///")).with_name("stripe_budget.sqlite")
    return f"sqlite:///{path}"
