"""The application's payments table, read and written through a `PaymentsTable` mapping.

One module per database, chosen by `RECON_DATABASE_URL`'s scheme: PostgreSQL (`postgresql.py`),
MySQL/MariaDB (`mysql.py`), SQLite (`sqlite_file.py`) and DuckDB (`duckdb_file.py`). Each reads
the mapped columns as text into the same raw frame; `normalise.py` turns it into a
`PAYMENTS_SCHEMA` frame: Int64 minor units, upper-case currencies, UTC instants.

Decisions, on every database:
- A created_at column without a time zone holds wall times in RECON_DB_TIMEZONE (default UTC).
- A NULL in the refunded column means nothing was refunded (0): applications add such columns
  as nullable and leave them empty until a refund happens.
- Amounts travel as text and are converted with exact string/integer arithmetic, so no DECIMAL
  amount ever passes through a float. A FLOAT/DOUBLE column (and SQLite's REAL-backed DECIMAL)
  is rounded to the currency's minor unit, with a warning (`normalise._rounded`).
- A UNIQUE index on the id column is recommended; inserts honour it (a violation means the row is
  already present).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import psycopg
import pymysql

from recon_dagster.core.frames import empty_payments
from recon_dagster.settings import ConfigError, PaymentsTable, scrub
from recon_dagster.sources.payments_db import duckdb_file, mysql, postgresql, sqlite_file
from recon_dagster.sources.payments_db.backend import Backend
from recon_dagster.sources.payments_db.connections import (
    URL_VARIABLE,
    PaymentsUnreachable,
    connection_lost,
)
from recon_dagster.sources.payments_db.introspect import TableInfo
from recon_dagster.sources.payments_db.normalise import to_payments_frame, within
from recon_dagster.sources.payments_db.writing import (
    InsertResult,
    NewPayment,
    PaymentsDataError,
    column_time,
    require_aware,
)

_BACKENDS: tuple[Backend, ...] = (postgresql, mysql, sqlite_file, duckdb_file)
# A naive column is read with this margin around the window (a wall time is ambiguous for up to
# an hour at a DST fall-back), then cut exactly by instant.
_WALL_MARGIN = timedelta(hours=3)
# A day of up to this many rows is read on a brief connection (see `Backend.read_window`).
BRIEF_ROWS = 100_000


def validate(table: PaymentsTable) -> TableInfo:
    """Connect, and check the table and every configured column exist; return their types."""
    backend = _backend(table)
    with backend.connect(table, brief=True) as conn:
        return backend.inspect(conn, table)


def read_window(table: PaymentsTable, start: datetime, end: datetime) -> pl.DataFrame:
    """Rows with created_at in [start, end), normalised to `PAYMENTS_SCHEMA`."""
    require_aware(start, "read_window start")
    require_aware(end, "read_window end")
    backend = _backend(table)
    with backend.connect(table, brief=True) as conn:
        info = backend.inspect(conn, table)
        lo, hi = (
            _column_bound(start, info, table, -_WALL_MARGIN),
            _column_bound(end, info, table, _WALL_MARGIN),
        )
        raw = backend.read_window(conn, table, info, lo, hi, most=BRIEF_ROWS)
    if raw is None:  # a large day: read where its memory goes back afterwards
        with backend.connect(table) as conn:
            raw = backend.read_window(conn, table, info, lo, hi)
        assert raw is not None  # without `most`, every backend reads the window
    frame = to_payments_frame(raw, table, info)
    if info.created_at_has_timezone and backend.EXACT_WINDOW:
        return frame  # the SQL already cut at the instants: no second copy of a large day
    wall = raw["created_us"]
    del raw
    return within(frame, wall, start, end, info, table.db_timezone)


def find_ids(
    table: PaymentsTable,
    ids: Sequence[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pl.DataFrame:
    """Rows whose id is in `ids` (anywhere in the table, or with created_at in [start, end))."""
    wanted = list(dict.fromkeys(ids))
    bad = [i for i in wanted if not isinstance(i, str)]
    if bad:
        raise TypeError(f"find_ids: ids must be strings, got {bad[0]!r}")
    backend = _backend(table)
    with backend.connect(table, brief=True) as conn:
        info = backend.inspect(conn, table)
        if not wanted:
            return empty_payments()
        window = [
            (op, _column_bound(bound, info, table, margin))
            for op, bound, margin in ((">=", start, -_WALL_MARGIN), ("<", end, _WALL_MARGIN))
            if bound is not None
        ]
        raw = backend.find_ids(conn, table, info, wanted, window)
    return within(
        to_payments_frame(raw, table, info), raw["created_us"], start, end, info, table.db_timezone
    )


RECONNECT_SECONDS = 60.0  # how long an insert waits for its database server to come back


def insert_payment(
    table: PaymentsTable, row: NewPayment, *, connection: Any = None, also: Sequence[str] = ()
) -> InsertResult:
    """Insert one row in its own transaction, unless its id (or one of `also`: the same payment's
    other ids, e.g. its charge and its PaymentIntent) is already anywhere in the table.

    Safe against concurrent syncs on every database (each backend's `insert` says how).
    `connection` is an open connection of the backend's driver to `table.url` to reuse; without it
    one is opened and closed here.
    """
    ids = list(dict.fromkeys([row.id, *also]))
    backend = _backend(table)
    if connection is not None:
        return backend.insert(connection, table, row, ids)
    if not table.url.startswith((*postgresql.SCHEMES, *mysql.SCHEMES)):  # files: no server
        with backend.connect(table, write=True, brief=True) as conn:  # one row
            return backend.insert(conn, table, row, ids)
    # A database server restarting refuses or cuts connections for a few seconds: the insert is
    # tried again on a new connection. It is safe: the transaction either never committed, or it
    # did and the check before the write now finds the row (ALREADY_PRESENT).
    deadline, delay = time.monotonic() + RECONNECT_SECONDS, 0.2
    while True:
        try:
            with backend.connect(table, write=True) as conn:
                return backend.insert(conn, table, row, ids)
        except (PaymentsUnreachable, psycopg.Error, pymysql.MySQLError) as exc:
            if not connection_lost(exc):
                raise
            if time.monotonic() >= deadline:
                raise PaymentsDataError(
                    f"payments table {table.table}: cannot insert row {row.id!r}: the database "
                    f"was unreachable for {RECONNECT_SECONDS:g}s "
                    f"({scrub(exc, table.url).splitlines()[0][:300]})"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _backend(table: PaymentsTable) -> Backend:
    for backend in _BACKENDS:
        if table.url.startswith(backend.SCHEMES):
            return backend
    raise ConfigError(
        URL_VARIABLE, "expected postgresql://, mysql://, mariadb://, sqlite:/// or duckdb:/// URL"
    )


def _column_bound(
    instant: datetime, info: TableInfo, table: PaymentsTable, margin: timedelta
) -> datetime:
    """A window bound as the column compares: the exact instant, or the wall time with a margin."""
    require_aware(instant, "window bound")
    return column_time(
        instant if info.created_at_has_timezone else instant + margin, info, table.db_timezone
    )


@dataclass(frozen=True)
class PaymentsReader:
    """The payments table as the use cases read it: a day's window, or rows by id."""

    table: PaymentsTable

    def read_window(self, start: datetime, end: datetime) -> pl.DataFrame:
        return read_window(self.table, start, end)

    def find_ids(
        self, ids: Sequence[str], start: datetime | None = None, end: datetime | None = None
    ) -> pl.DataFrame:
        return find_ids(self.table, ids, start=start, end=end)


__all__ = [
    "PaymentsReader",
    "InsertResult",
    "NewPayment",
    "PaymentsDataError",
    "TableInfo",
    "find_ids",
    "insert_payment",
    "read_window",
    "validate",
]
