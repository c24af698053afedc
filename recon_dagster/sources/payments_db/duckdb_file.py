"""DuckDB files (`duckdb:///abs/path`), read through DuckDB's own Arrow export."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from recon_dagster.duckdb_connect import connect_waiting, read_frame
from recon_dagster.settings import ConfigError, PaymentsTable, redact_url
from recon_dagster.sources.payments_db.connections import URL_VARIABLE, cannot_connect
from recon_dagster.sources.payments_db.introspect import TableInfo, table_info
from recon_dagster.sources.payments_db.normalise import RAW_SCHEMA
from recon_dagster.sources.payments_db.writing import (
    Dialect,
    InsertResult,
    NewPayment,
    account_condition,
    check_and_write,
    column_time,
    double_quote,
    quoted_table,
    write_error,
)

EXACT_WINDOW: bool = True
SCHEMES: tuple[str, ...] = ("duckdb:///",)
DIALECT = Dialect(quote=double_quote, mark="?", text="CAST({} AS VARCHAR)", returning=True)
_TIMESTAMPS = {
    "timestamp with time zone": True,
    "timestamptz": True,
    "timestamp": False,
    "datetime": False,
    "timestamp_s": False,
    "timestamp_ms": False,
    "timestamp_ns": False,
    "date": False,
}
# DuckDB allows one writer process; this lock makes check-then-insert atomic between the threads
# of that process (DuckDB's snapshot isolation would let two appends of the same id through).
_WRITE_LOCK = threading.Lock()


@contextmanager
def connect(
    table: PaymentsTable, *, write: bool = False, brief: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """`brief`: attached to this process's in-memory database (see `connect_waiting`), for
    look-ups, one-row inserts and days of up to `BRIEF_ROWS` rows; a larger day is read from the
    file opened as a database of its own, which gives its memory back when closed."""
    path = Path(table.url[len("duckdb:///") :])
    if not path.is_file():
        # Never create it: an empty new file would read as "no payments at all".
        raise ConfigError(
            URL_VARIABLE, f"cannot open {redact_url(table.url)} (no such DuckDB file)"
        )
    with ExitStack() as closing:
        try:
            # Reads open read-only so several processes (e.g. Dagster steps) can read at once; a
            # process writing (a sync) holds the file a moment, and we wait for it.
            conn = closing.enter_context(connect_waiting(path, read_only=not write, shared=brief))
        except duckdb.Error as exc:
            raise cannot_connect(table.url, exc, "open") from None
        yield conn


def inspect(conn: duckdb.DuckDBPyConnection, table: PaymentsTable) -> TableInfo:
    schema, _, name = table.table.rpartition(".")
    rows = conn.execute(
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND lower(table_schema) = lower(coalesce(?, "
        "current_schema())) AND lower(table_name) = lower(?) ORDER BY ordinal_position",
        [schema or None, name],
    ).fetchall()
    found = (
        (f"{rows[0][0]}.{rows[0][1]}", {row[2]: row[3].lower() for row in rows}) if rows else None
    )
    return table_info(table, found, case_sensitive=False, timestamp_zone=_TIMESTAMPS.get)


def read_window(
    conn: duckdb.DuckDBPyConnection,
    table: PaymentsTable,
    info: TableInfo,
    lo: datetime,
    hi: datetime,
    most: int | None = None,
) -> pl.DataFrame | None:
    """None when more than `most` rows: a brief connection would keep their memory."""
    ts = double_quote(table.created_at_column)
    where = f"{ts} >= ? AND {ts} < ?" + account_condition(table, double_quote)
    tables = quoted_table(table.table)
    conn.begin()  # one snapshot for the count and the rows
    try:
        if most is not None:
            count = f"SELECT count(*) FROM {tables} WHERE {where}"
            if conn.execute(count, [lo, hi]).fetchall()[0][0] > most:
                return None
        return _frame(conn, f"{_select(table)} WHERE {where}", [lo, hi])
    finally:
        conn.rollback()


def find_ids(
    conn: duckdb.DuckDBPyConnection,
    table: PaymentsTable,
    info: TableInfo,
    ids: list[str],
    window: Sequence[tuple[str, datetime]],
) -> pl.DataFrame:
    conditions = [
        f"CAST({double_quote(table.id_column)} AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))"
    ]
    conditions += [f"{double_quote(table.created_at_column)} {op} ?" for op, _ in window]
    return _frame(
        conn,
        f"{_select(table)} WHERE {' AND '.join(conditions)}",
        [ids, *(bound for _, bound in window)],
    )


def insert(
    conn: duckdb.DuckDBPyConnection, table: PaymentsTable, row: NewPayment, ids: list[str]
) -> InsertResult:
    """In its own transaction; writers of this process take turns (DuckDB allows one writer
    process)."""
    with _WRITE_LOCK:
        conn.begin()
        try:
            info = inspect(conn, table)

            def run(statement: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
                return conn.execute(statement, list(params)).fetchone()

            result = check_and_write(
                run,
                DIALECT,
                table,
                row,
                info,
                ids,
                column_time(row.created_at, info, table.db_timezone),
            )
            (conn.commit if result is InsertResult.INSERTED else conn.rollback)()
            return result
        except (duckdb.ConstraintException, duckdb.TransactionException):
            # A unique index, or a write-write conflict on the id (DuckDB detects some only at
            # commit): another writer put the row there first.
            _rollback_quietly(conn)
            return InsertResult.ALREADY_PRESENT
        except duckdb.ConversionException as exc:
            _rollback_quietly(conn)
            raise write_error(table, row, exc) from None
        except BaseException:
            _rollback_quietly(conn)
            raise


def _rollback_quietly(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open (a failed commit has already ended it)."""
    try:
        conn.rollback()
    except duckdb.TransactionException:
        pass


def _select(table: PaymentsTable) -> str:
    def text(column: str | None) -> str:
        return f"CAST({double_quote(column) if column else 'NULL'} AS VARCHAR)"

    tables = quoted_table(table.table)
    return (
        f"SELECT {text(table.id_column)} AS id, {text(table.amount_column)} AS amount, "
        f"{text(table.currency_column)} AS currency, {text(table.status_column)} AS status, "
        f"epoch_us({double_quote(table.created_at_column)}) AS created_us, "
        f"{text(table.refunded_column)} AS refunded FROM {tables}"
    )


def _frame(conn: duckdb.DuckDBPyConnection, query: str, params: list[Any]) -> pl.DataFrame:
    return read_frame(conn.sql(query, params=params)).cast(RAW_SCHEMA)
