"""PostgreSQL through psycopg 3.

The window is read with `COPY ... TO STDOUT (FORMAT csv)` into `polars.read_csv`: measured against
connectorx and the ADBC driver on a 1M-row day (`benchmarks/bench_db_read.py`) it was as fast
(0.76 s against 0.77 and 0.76 s) with the least memory (237 MiB against 299 and 331 MiB), so it
stays. Everything is selected as text, so no amount passes through a float on the way.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, LiteralString, cast

import polars as pl
import psycopg
from psycopg import sql

from recon_dagster.settings import PaymentsTable
from recon_dagster.sources.payments_db.connections import cannot_connect
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
    write_error,
)

EXACT_WINDOW: bool = True
SCHEMES: tuple[str, ...] = ("postgresql://", "postgres://")
DIALECT = Dialect(quote=double_quote, mark="%s", text="{}::text", returning=True)
_TIMESTAMPS = {
    "timestamp with time zone": True,
    "timestamptz": True,
    "timestamp without time zone": False,
    "timestamp": False,
    "date": False,
}


@contextmanager
def connect(
    table: PaymentsTable, *, write: bool = False, brief: bool = False
) -> Iterator[psycopg.Connection]:
    try:
        conn = psycopg.connect(table.url, connect_timeout=10)
    except psycopg.Error as exc:
        raise cannot_connect(table.url, exc) from None
    with conn:
        yield conn


def inspect(conn: psycopg.Connection, table: PaymentsTable) -> TableInfo:
    return table_info(
        table, _columns(conn, table), case_sensitive=True, timestamp_zone=_TIMESTAMPS.get
    )


def _columns(conn: psycopg.Connection, table: PaymentsTable) -> tuple[str, dict[str, str]] | None:
    # to_regclass resolves an unqualified name through search_path, like the queries will.
    qualified = sql.Identifier(*table.table.split(".")).as_string(conn)
    with conn.cursor() as cur:
        found = cur.execute(
            "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = "
            "to_regclass(%s)",
            [qualified],
        ).fetchone()
        if found is None:
            return None
        rows = cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            list(found),
        ).fetchall()
    return f"{found[0]}.{found[1]}", {column: kind.lower() for column, kind in rows}


def read_window(
    conn: psycopg.Connection,
    table: PaymentsTable,
    info: TableInfo,
    lo: datetime,
    hi: datetime,
    most: int | None = None,  # every window is read here, whatever its size
) -> pl.DataFrame:
    where = sql.SQL("WHERE {ts} >= {lo} AND {ts} < {hi}").format(
        ts=sql.Identifier(table.created_at_column), lo=sql.Literal(lo), hi=sql.Literal(hi)
    )
    # The account's condition is built of a quoted identifier and a checked name (`writing`).
    account = sql.SQL(cast(LiteralString, account_condition(table, double_quote)))
    return copy(conn, sql.SQL(" ").join([_select(table), where, account]))


def find_ids(
    conn: psycopg.Connection,
    table: PaymentsTable,
    info: TableInfo,
    ids: list[str],
    window: Sequence[tuple[str, datetime]],
) -> pl.DataFrame:
    ts = sql.Identifier(table.created_at_column)
    clauses = [sql.SQL("{}::text = ANY(%s::text[])").format(sql.Identifier(table.id_column))]
    compare: dict[str, LiteralString] = {">=": "{} >= %s", "<": "{} < %s"}
    clauses += [sql.SQL(compare[op]).format(ts) for op, _ in window]
    query = sql.SQL(" ").join([_select(table), sql.SQL("WHERE"), sql.SQL(" AND ").join(clauses)])
    # Bound parameters (not COPY): a few thousand ids give at most as many rows.
    with conn.cursor() as cur:
        rows = cur.execute(query, [ids, *(bound for _, bound in window)]).fetchall()
    return pl.DataFrame(rows, schema=RAW_SCHEMA, orient="row")


def insert(
    conn: psycopg.Connection, table: PaymentsTable, row: NewPayment, ids: list[str]
) -> InsertResult:
    """In its own transaction (a savepoint inside the caller's), under a transaction-scoped advisory
    lock keyed by (table, the payment's smallest id): two syncs of the same payment queue here,
    whichever id kind each writes; other payments don't. A unique index on the id column turns an
    application's concurrent insert into ALREADY_PRESENT."""
    try:
        with conn.transaction():
            info = inspect(conn, table)
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", [table.table, min(ids)]
            )

            def run(statement: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
                # The statement's identifiers were checked (`parse_identifier`) and quoted by
                # `writing`; its values are parameters.
                return conn.execute(cast(LiteralString, statement), list(params)).fetchone()

            created = column_time(row.created_at, info, table.db_timezone)
            return check_and_write(run, DIALECT, table, row, info, ids, created)
    except psycopg.errors.UniqueViolation:
        return InsertResult.ALREADY_PRESENT
    except psycopg.DataError as exc:
        raise write_error(table, row, exc) from None


def _select(table: PaymentsTable) -> sql.Composed:
    refunded = sql.SQL("NULL::text")
    if table.refunded_column:
        refunded = sql.SQL("{}::text").format(sql.Identifier(table.refunded_column))
    # EXTRACT(EPOCH ...) is numeric (exact) since PostgreSQL 14; for a naive timestamp it counts
    # from 1970-01-01 00:00 of the wall clock, whatever the session's TimeZone.
    return sql.SQL(
        "SELECT {id}::text, {amount}::text, {currency}::text, {status}::text, "
        "(EXTRACT(EPOCH FROM {created}) * 1000000)::bigint, {refunded} FROM {table}"
    ).format(
        id=sql.Identifier(table.id_column),
        amount=sql.Identifier(table.amount_column),
        currency=sql.Identifier(table.currency_column),
        status=sql.Identifier(table.status_column),
        created=sql.Identifier(table.created_at_column),
        refunded=refunded,
        table=sql.Identifier(*table.table.split(".")),
    )


def copy(conn: psycopg.Connection, select: sql.Composable) -> pl.DataFrame:
    """COPY ... TO STDOUT as CSV, streamed into one buffer: no Python object per row."""
    buffer = io.BytesIO()
    query = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(select)
    with conn.cursor() as cur, cur.copy(query) as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    # CSV NULL is an unquoted empty field (-> null); an empty string is "" (-> "").
    return pl.read_csv(buffer, has_header=False, schema=RAW_SCHEMA, raise_if_empty=False)
