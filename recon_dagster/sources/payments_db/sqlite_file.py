"""SQLite files (`sqlite:///relative/path.db` or `sqlite:////absolute/path.db`).

The day's window is read by connectorx into Arrow; lookups by id, introspection and inserts use
the standard library's `sqlite3`. SQLite has no date type: applications store a created_at as
text (Django, Rails: '2024-05-01 12:00:00.123456', sometimes with 'T' or an offset) or as epoch
numbers (Prisma: milliseconds). Each value is read by its own form: text without an offset is a
wall time in RECON_DB_TIMEZONE, with one it is an instant; an integer is epoch milliseconds from
1e11 up (year 5138 in seconds) and epoch seconds below. SQLite also keeps DECIMAL/NUMERIC values
with a fraction as REAL (binary floating point), so such amounts are read like FLOAT columns.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

from recon_dagster.settings import ConfigError, PaymentsTable, redact_url
from recon_dagster.sources.payments_db.connections import URL_VARIABLE, cannot_connect, read_arrow
from recon_dagster.sources.payments_db.introspect import TableInfo, table_info
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

EXACT_WINDOW: bool = False  # every window is read with a margin (see the module)
SCHEMES: tuple[str, ...] = ("sqlite:///",)
DIALECT = Dialect(quote=double_quote, mark="?", text="CAST({} AS TEXT)", returning=True)
_MARGIN = timedelta(hours=14)  # the widest UTC offset a text value may carry
_MILLISECONDS_FROM = 10**11
_TEXT_TIME = (
    r"^\s*(?P<_date>\d{4}-\d{2}-\d{2})(?:[ T](?P<_time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?))?"
    r"\s*(?P<_zone>Z|[+-]\d{2}:?\d{2})?\s*$"
)
_RAW_TEXT_SCHEMA = pl.Schema(
    {
        "id": pl.String(),
        "amount": pl.String(),
        "currency": pl.String(),
        "status": pl.String(),
        "created_type": pl.String(),
        "created_text": pl.String(),
        "refunded": pl.String(),
    }
)


def path_of(url: str) -> Path:
    return Path(url[len("sqlite:///") :])


@contextmanager
def connect(
    table: PaymentsTable, *, write: bool = False, brief: bool = False
) -> Iterator[sqlite3.Connection]:
    path = path_of(table.url)
    if not path.is_file():
        # Never create it: an empty new file would read as "no payments at all".
        raise ConfigError(
            URL_VARIABLE,
            f"cannot open {redact_url(table.url)} (no such SQLite file; "
            "an absolute path takes four slashes: sqlite:////path/to/app.db)",
        )
    try:
        # Autocommit mode: transactions are begun explicitly (BEGIN IMMEDIATE for writes).
        conn = sqlite3.connect(
            f"file:{quote(str(path))}{'' if write else '?mode=ro'}",
            uri=True,
            timeout=30,
            isolation_level=None,
        )
    except sqlite3.Error as exc:
        raise cannot_connect(table.url, exc, "open") from None
    try:
        yield conn
    finally:
        conn.close()


def inspect(conn: sqlite3.Connection, table: PaymentsTable) -> TableInfo:
    schema, _, name = table.table.rpartition(".")
    try:
        rows = conn.execute(
            "SELECT name, type FROM pragma_table_info(?, ?)", [name, schema or "main"]
        ).fetchall()
    except sqlite3.DatabaseError as exc:  # not a database file, or an unknown schema
        raise cannot_connect(table.url, exc, "read") from None
    found = (
        (f"{schema or 'main'}.{name}", {column: kind.lower() for column, kind in rows})
        if rows
        else None
    )
    return table_info(
        table,
        found,
        case_sensitive=False,
        kind_of_amount=_amount_kind,
        timestamp_zone=lambda _type: False,
    )


def read_window(
    conn: sqlite3.Connection,
    table: PaymentsTable,
    info: TableInfo,
    lo: datetime,
    hi: datetime,
    most: int | None = None,  # every window is read here, whatever its size
) -> pl.DataFrame:
    url = "sqlite://" + quote(str(path_of(table.url)))
    query = f"{_select(table)} WHERE {_window(table, lo, hi)}"
    query += account_condition(table, DIALECT.quote)
    return _decode(read_arrow(url, query, table, _RAW_TEXT_SCHEMA))


def find_ids(
    conn: sqlite3.Connection,
    table: PaymentsTable,
    info: TableInfo,
    ids: list[str],
    window: Sequence[tuple[str, datetime]],
) -> pl.DataFrame:
    # One JSON parameter instead of one per id: no limit on how many ids are asked.
    ids_json = json.dumps(ids)
    where = f"CAST({double_quote(table.id_column)} AS TEXT) IN (SELECT value FROM json_each(?))"
    if window:
        lo = next((bound for op, bound in window if op == ">="), datetime(1, 1, 2))
        hi = next((bound for op, bound in window if op == "<"), datetime(9999, 12, 30))
        where += f" AND {_window(table, lo, hi)}"
    rows = conn.execute(f"{_select(table)} WHERE {where}", [ids_json]).fetchall()
    return _decode(pl.DataFrame(rows, schema=_RAW_TEXT_SCHEMA, orient="row"))


def insert(
    conn: sqlite3.Connection, table: PaymentsTable, row: NewPayment, ids: list[str]
) -> InsertResult:
    """In its own transaction, begun with BEGIN IMMEDIATE: SQLite's write lock is taken before the
    check, so concurrent syncs (threads or processes) queue there, up to the 30 s busy timeout."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        info = inspect(conn, table)

        def run(statement: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
            return conn.execute(statement, list(params)).fetchone()

        result = check_and_write(
            run, DIALECT, table, row, info, ids, _as_stored(conn, table, row.created_at, info)
        )
        conn.execute("COMMIT" if result is InsertResult.INSERTED else "ROLLBACK")
        return result
    except sqlite3.IntegrityError as exc:
        conn.execute("ROLLBACK")
        if "UNIQUE" in str(exc):  # a unique index: the row got there first
            return InsertResult.ALREADY_PRESENT
        raise write_error(table, row, exc) from None
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _amount_kind(declared: str) -> str | None:
    """By SQLite's type affinity rules (declared types are free text)."""
    upper = declared.upper()
    if "INT" in upper:
        return "integer"
    if any(k in upper for k in ("CHAR", "CLOB", "TEXT")) or not upper or "BLOB" in upper:
        return "text"
    return "float"  # REAL, FLOAT, DOUBLE, and NUMERIC affinity (DECIMAL, NUMERIC): binary floats


def _select(table: PaymentsTable) -> str:
    def text(column: str | None) -> str:
        # connectorx infers an expression's type from its first value and cannot from a NULL, so
        # NULL travels as NUL (no text column holds one) and is turned back in `_decode`.
        return f"ifnull(CAST({double_quote(column) if column else 'NULL'} AS TEXT), char(0))"

    created = double_quote(table.created_at_column)
    tables = quoted_table(table.table)
    return (
        f"SELECT {text(table.id_column)} AS id, {text(table.amount_column)} AS amount, "
        f"{text(table.currency_column)} AS currency, "
        f"{text(table.status_column)} AS status, typeof({created}) AS created_type, "
        f"{text(table.created_at_column)} AS created_text, "
        f"{text(table.refunded_column)} AS refunded FROM {tables}"
    )


def _window(table: PaymentsTable, lo: datetime, hi: datetime) -> str:
    """SQL that keeps every row that may fall in [lo, hi) (naive wall times), whatever its form,
    with a margin for offsets; `normalise.within` cuts exactly. SQLite orders numbers before text,
    so each range only meets values of its own form, and an index on the column serves all three.
    Text bounds: ' ' sorts before 'T', so the lower bound uses ' ' and the upper 'T'."""
    ts = double_quote(table.created_at_column)
    start, end = lo - _MARGIN, hi + _MARGIN
    seconds = (
        int(start.replace(tzinfo=UTC).timestamp()),
        int(end.replace(tzinfo=UTC).timestamp()) + 1,
    )
    return (
        f"(({ts} >= '{start:%Y-%m-%d %H:%M:%S}' AND {ts} < '{end:%Y-%m-%dT%H:%M:%S}') "
        f"OR ({ts} >= {seconds[0]} AND {ts} < {seconds[1]}) "
        f"OR ({ts} >= {seconds[0] * 1000} AND {ts} < {seconds[1] * 1000}))"
    )


def _decode(raw: pl.DataFrame) -> pl.DataFrame:
    """NUL back to NULL; `created_type` / `created_text` -> `created_us`, `created_utc`,
    `created_bad` (see the module)."""
    texts = [name for name in _RAW_TEXT_SCHEMA if name != "created_type"]
    raw = raw.with_columns(
        pl.when(pl.col(name) != "\0").then(pl.col(name)).alias(name) for name in texts
    )
    kind, text = pl.col("created_type"), pl.col("created_text")
    frame = raw.with_columns(_parts=text.str.extract_groups(_TEXT_TIME)).unnest("_parts")
    clock = pl.col("_time").fill_null("00:00:00")
    clock = pl.when(clock.str.len_chars() == 5).then(clock + ":00").otherwise(clock)
    wall = pl.concat_str(pl.col("_date"), pl.lit(" "), clock).str.to_datetime(
        "%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False
    )
    zone = pl.col("_zone").str.replace(":", "", literal=True)
    offset_minutes = pl.when(zone == "Z").then(0).otherwise(
        zone.str.slice(1, 2).cast(pl.Int64, strict=False) * 60
        + zone.str.slice(3, 2).cast(pl.Int64, strict=False)
    ) * pl.when(zone.str.starts_with("-")).then(-1).otherwise(1)
    text_us = wall.dt.epoch("us") - offset_minutes.fill_null(0) * 60_000_000
    number = text.cast(pl.Int64, strict=False)
    number_us = (
        pl.when(number.abs() >= _MILLISECONDS_FROM)
        .then(number * 1000)
        .otherwise(number * 1_000_000)
    )
    frame = frame.with_columns(
        created_us=pl.when(kind == "integer").then(number_us).when(kind == "text").then(text_us),
        created_utc=(kind == "integer") | pl.col("_zone").is_not_null(),
    )
    frame = frame.with_columns(
        created_bad=pl.when(pl.col("created_us").is_null() & text.is_not_null()).then(text),
    )
    return frame.drop("created_type", "created_text", "_date", "_time", "_zone")


def _as_stored(
    conn: sqlite3.Connection, table: PaymentsTable, instant: datetime, info: TableInfo
) -> Any:
    """The created_at value in the form the table's existing rows use (see the module), so the
    application reads our rows like its own; 'YYYY-MM-DD HH:MM:SS' wall time in an empty table."""
    ts = double_quote(table.created_at_column)
    tables = quoted_table(table.table)
    sample = conn.execute(
        f"SELECT typeof({ts}), CAST({ts} AS TEXT) FROM {tables} WHERE {ts} IS NOT NULL LIMIT 1"
    ).fetchone()
    utc = instant.astimezone(UTC)
    if sample and sample[0] == "integer":
        seconds = int(utc.timestamp())
        return (
            seconds * 1000 + utc.microsecond // 1000
            if abs(int(sample[1])) >= _MILLISECONDS_FROM
            else seconds
        )
    text = sample[1] if sample and sample[0] == "text" else ""
    separator = "T" if len(text) > 10 and text[10] == "T" else " "
    fraction = _fraction_digits(text)
    zone = text[19 + (fraction + 1 if fraction else 0) :].strip()
    moment = utc if zone else column_time(instant, info, table.db_timezone)
    stamp = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    if fraction:
        stamp += "." + f"{moment.microsecond:06d}"[:fraction].ljust(fraction, "0")
    elif moment.microsecond:
        stamp += f".{moment.microsecond:06d}"
    return stamp + ("Z" if zone == "Z" else "+00:00" if zone else "")


def _fraction_digits(text: str) -> int:
    if len(text) < 20 or text[19] != ".":
        return 0
    digits = 0
    for char in text[20:]:
        if not char.isdigit():
            break
        digits += 1
    return digits
