"""The application's payments table, read and written through a `PaymentsTable` mapping.

DuckDB files (`duckdb:///abs/path`) go through `duckdb`, PostgreSQL through `psycopg` 3. Reads come
back as `PAYMENTS_SCHEMA` frames: Int64 minor units, upper-case currencies, UTC instants.

Decisions:
- A created_at column without a time zone (`timestamp`) holds UTC wall times.
- A NULL in the refunded column means nothing was refunded (0): applications add such columns
  as nullable and leave them empty until a refund happens.
- Amounts travel as text (`amount::text`) and are converted with exact string/integer arithmetic
  in Polars, so no amount is ever a float, even from a float column (whose text is the shortest
  decimal that round-trips, i.e. the value the application wrote). Only rows the fast path cannot
  parse (exponent notation, bad data) go through `Decimal`, one by one.
- A UNIQUE index on the id column is recommended; inserts honour it (a violation means the row is
  already present).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation, localcontext
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import polars as pl
import psycopg
from psycopg import sql

from recon_dagster.core.frames import PAYMENTS_SCHEMA, conform
from recon_dagster.money import ISO_CODES, exponents_table, normalize_currency, to_major
from recon_dagster.settings import ConfigError, PaymentsTable, redact_url

_URL_VARIABLE = "RECON_DATABASE_URL"
_COLUMN_VARIABLES = {
    "id_column": "RECON_PAYMENTS_ID_COLUMN",
    "amount_column": "RECON_PAYMENTS_AMOUNT_COLUMN",
    "currency_column": "RECON_PAYMENTS_CURRENCY_COLUMN",
    "status_column": "RECON_PAYMENTS_STATUS_COLUMN",
    "created_at_column": "RECON_PAYMENTS_CREATED_AT_COLUMN",
    "refunded_column": "RECON_PAYMENTS_REFUNDED_COLUMN",
}
_INTEGER_TYPES = {
    "smallint", "integer", "bigint", "tinyint", "hugeint", "int", "int2", "int4", "int8",
    "utinyint", "usmallint", "uinteger", "ubigint", "uhugeint",
}  # fmt: skip
_FLOAT_TYPES = {"real", "double precision", "double", "float", "float4", "float8"}
_TEXT_PREFIXES = ("text", "varchar", "character", "char", "bpchar", "string")
_TIMESTAMPTZ_TYPES = {"timestamp with time zone", "timestamptz"}
_TIMESTAMP_TYPES = {
    "timestamp without time zone", "timestamp", "datetime", "timestamp_s", "timestamp_ms", "timestamp_ns",
}  # fmt: skip

# What the SQL returns, before normalisation: everything as text except created_at, which comes
# as microseconds since the epoch (exact, and independent of the session's time zone).
_RAW_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "amount": pl.String(),
    "currency": pl.String(),
    "status": pl.String(),
    "created_us": pl.Int64(),
    "refunded": pl.String(),
}
# Sign, up to 14 integer digits (x 10^4 still fits Int64), optional fraction. Anything else
# (exponent notation, more digits, garbage) takes the exact Decimal fallback.
_PLAIN_NUMBER = r"^\s*(?P<_sign>[+-]?)(?P<_int>\d{1,14})(?:\.(?P<_frac>\d*))?\s*$"
_POW10 = {k: 10**k for k in range(19)}
_INT64 = (-(2**63), 2**63 - 1)

# DuckDB allows one writer process; this lock makes check-then-insert atomic between the threads
# of that process (DuckDB's snapshot isolation would let two appends of the same id through).
_DUCKDB_WRITE_LOCK = threading.Lock()


class PaymentsDataError(ValueError):
    """A payments row that cannot be read (or written) exactly; the message names table, column, row."""


@dataclass(frozen=True)
class TableInfo:
    """What `validate` found: the table and the types of its columns (database names, lower-case)."""

    table: str  # schema.table as found
    columns: dict[str, str]  # every column -> its type
    amount_kind: str  # integer | decimal | float | text
    refunded_kind: str | None  # same kinds, None when no refunded column is configured
    created_at_has_timezone: bool  # False: naive timestamps, taken as UTC


@dataclass(frozen=True)
class NewPayment:
    """One row to write, in integer minor units; `insert_payment` converts to the table's unit."""

    id: str
    amount: int
    currency: str
    status: str
    created_at: datetime
    refunded: int | None = 0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"NewPayment.id must be a non-empty string, got {self.id!r}")
        for name, value in (("amount", self.amount), ("refunded", self.refunded)):
            if value is None and name == "refunded":
                continue  # written as NULL, read back as 0
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"NewPayment {self.id!r}: {name} must be integer minor units, got {value!r}")
        _require_aware(self.created_at, f"NewPayment {self.id!r}: created_at")
        object.__setattr__(self, "currency", normalize_currency(self.currency))


class InsertResult(str, Enum):
    INSERTED = "inserted"
    ALREADY_PRESENT = "already_present"


def validate(table: PaymentsTable) -> TableInfo:
    """Connect, and check the table and every configured column exist; return their types."""
    with _connect(table) as conn:
        return _inspect(conn, table)


def read_window(table: PaymentsTable, start: datetime, end: datetime) -> pl.DataFrame:
    """Rows with created_at in [start, end), normalised to `PAYMENTS_SCHEMA`."""
    _require_aware(start, "read_window start")
    _require_aware(end, "read_window end")
    with _connect(table) as conn:
        info = _inspect(conn, table)
        bounds = (_bound(start, info), _bound(end, info))
        if _is_postgres(table.url):
            where = sql.SQL("WHERE {ts} >= {start} AND {ts} < {end}").format(
                ts=sql.Identifier(table.created_at_column), start=sql.Literal(bounds[0]), end=sql.Literal(bounds[1])
            )
            raw = _pg_copy(conn, sql.SQL(" ").join([_pg_select(table), where]))
        else:
            ts = _quote(table.created_at_column)
            raw = _duck_frame(conn, f"{_duck_select(table)} WHERE {ts} >= ? AND {ts} < ?", list(bounds))
    return _normalise(raw, table)


def find_ids(
    table: PaymentsTable, ids: Sequence[str], *, start: datetime | None = None, end: datetime | None = None
) -> pl.DataFrame:
    """Rows whose id is in `ids` (anywhere in the table, or with created_at in [start, end))."""
    wanted = list(dict.fromkeys(ids))
    bad = [i for i in wanted if not isinstance(i, str)]
    if bad:
        raise TypeError(f"find_ids: ids must be strings, got {bad[0]!r}")
    with _connect(table) as conn:
        info = _inspect(conn, table)
        window = [(op, _bound(value, info)) for op, value in ((">=", start), ("<", end)) if value is not None]
        params: list[Any] = [wanted, *(bound for _, bound in window)]
        if _is_postgres(table.url):
            ts = sql.Identifier(table.created_at_column)
            clauses = [sql.SQL("{}::text = ANY(%s::text[])").format(sql.Identifier(table.id_column))]
            clauses += [sql.SQL("{} " + op + " %s").format(ts) for op, _ in window]
            query = sql.SQL(" ").join([_pg_select(table), sql.SQL("WHERE"), sql.SQL(" AND ").join(clauses)])
            # Bound parameters (not COPY): a few thousand ids give at most as many rows.
            with conn.cursor() as cur:
                rows = cur.execute(query, params).fetchall()
            raw = pl.DataFrame(rows, schema=_RAW_SCHEMA, orient="row")
        else:
            conditions = [f"CAST({_quote(table.id_column)} AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))"]
            conditions += [f"{_quote(table.created_at_column)} {op} ?" for op, _ in window]
            raw = _duck_frame(conn, f"{_duck_select(table)} WHERE {' AND '.join(conditions)}", params)
    return _normalise(raw, table)


def insert_payment(table: PaymentsTable, row: NewPayment, *, connection: Any = None, also: Sequence[str] = ()) -> InsertResult:
    """Insert one row in its own transaction, unless its id (or one of `also`: the same payment's
    other ids, e.g. its charge and its PaymentIntent) is already anywhere in the table.

    Safe against concurrent syncs: PostgreSQL takes a transaction-scoped advisory lock keyed by
    (table, id) before checking; DuckDB serialises writers of this process (DuckDB allows one
    writer process). `connection` is an open psycopg / duckdb connection to `table.url` to reuse
    (on PostgreSQL the insert then runs in a savepoint if a transaction is already open, and
    commits with it); without it one is opened and closed here.
    """
    ids = list(dict.fromkeys([row.id, *also]))
    if connection is not None:
        return _insert(connection, table, row, ids)
    with _connect(table, write=True) as conn:
        return _insert(conn, table, row, ids)


# --- connections -----------------------------------------------------------------------------


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


@contextmanager
def _connect(table: PaymentsTable, *, write: bool = False) -> Iterator[Any]:
    """An open connection, always closed; a clear, password-free error when there is none."""
    if _is_postgres(table.url):
        try:
            conn = psycopg.connect(table.url, connect_timeout=10)
        except psycopg.Error as exc:
            reason = _scrub(exc, table.url)
            raise ConfigError(_URL_VARIABLE, f"cannot connect to {redact_url(table.url)} ({reason})") from None
        with conn:
            yield conn
        return
    if not table.url.startswith("duckdb:///"):
        raise ConfigError(_URL_VARIABLE, "expected postgresql://... or duckdb:///path/to/file.duckdb")
    path = Path(table.url[len("duckdb:///"):])
    if not path.is_file():
        # Never create it: an empty new file would read as "no payments at all".
        raise ConfigError(_URL_VARIABLE, f"cannot open {redact_url(table.url)} (no such DuckDB file)")
    try:
        # Reads open read-only so several processes (e.g. Dagster steps) can read at once.
        conn = duckdb.connect(str(path), read_only=not write)
    except duckdb.Error as exc:
        raise ConfigError(_URL_VARIABLE, f"cannot open {redact_url(table.url)} ({exc})") from None
    try:
        yield conn
    finally:
        conn.close()


def _scrub(exc: Exception, url: str) -> str:
    """The driver's message, with the URL's password removed should the driver ever echo it."""
    text = " ".join(str(exc).split())
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _quoted_table(table: PaymentsTable) -> str:
    return ".".join(_quote(part) for part in table.table.split("."))


# --- introspection ---------------------------------------------------------------------------


def _inspect(conn: Any, table: PaymentsTable) -> TableInfo:
    found = _pg_columns(conn, table) if _is_postgres(table.url) else _duck_columns(conn, table)
    if found is None:
        raise ConfigError(
            "RECON_PAYMENTS_TABLE",
            f"table {table.table} not found in {redact_url(table.url)} "
            "(an unqualified name is looked up in the connection's search path / DuckDB's main schema)",
        )
    name, columns = found
    # PostgreSQL quoted names are case-sensitive; DuckDB matches them case-insensitively.
    by_lower = {c.lower(): c for c in columns} if not _is_postgres(table.url) else {}
    types: dict[str, str] = {}
    for attr, variable in _COLUMN_VARIABLES.items():
        column = getattr(table, attr)
        if column is None:
            continue
        actual = column if column in columns else by_lower.get(column.lower())
        if actual is None:
            raise ConfigError(variable, f"column {column!r} not found in table {name} (columns: {', '.join(columns)})")
        types[attr] = columns[actual]

    def kind(attr: str) -> str:
        found_type = types[attr]
        if found_type in _INTEGER_TYPES:
            return "integer"
        if found_type.startswith(("numeric", "decimal")):
            return "decimal"
        if found_type in _FLOAT_TYPES:
            return "float"
        if found_type.startswith(_TEXT_PREFIXES):
            return "text"
        raise ConfigError(
            _COLUMN_VARIABLES[attr],
            f"column {getattr(table, attr)!r} in table {name} has type {found_type}: expected an amount "
            "(integer, numeric, float or text)",
        )

    created = types["created_at_column"]
    if created not in _TIMESTAMPTZ_TYPES | _TIMESTAMP_TYPES:
        raise ConfigError(
            "RECON_PAYMENTS_CREATED_AT_COLUMN",
            f"column {table.created_at_column!r} in table {name} has type {created}: expected a timestamp",
        )
    return TableInfo(
        table=name,
        columns=columns,
        amount_kind=kind("amount_column"),
        refunded_kind=kind("refunded_column") if table.refunded_column else None,
        created_at_has_timezone=created in _TIMESTAMPTZ_TYPES,
    )


def _pg_columns(conn: psycopg.Connection, table: PaymentsTable) -> tuple[str, dict[str, str]] | None:
    # to_regclass resolves an unqualified name through search_path, like the queries will.
    qualified = sql.Identifier(*table.table.split(".")).as_string(conn)
    with conn.cursor() as cur:
        found = cur.execute(
            "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
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


def _duck_columns(conn: duckdb.DuckDBPyConnection, table: PaymentsTable) -> tuple[str, dict[str, str]] | None:
    schema, _, name = table.table.rpartition(".")
    rows = conn.execute(
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND lower(table_schema) = lower(coalesce(?, current_schema())) "
        "AND lower(table_name) = lower(?) ORDER BY ordinal_position",
        [schema or None, name],
    ).fetchall()
    if not rows:
        return None
    return f"{rows[0][0]}.{rows[0][1]}", {row[2]: row[3].lower() for row in rows}


def _require_aware(value: Any, what: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime (an instant), got {value!r}")


def _bound(instant: datetime, info: TableInfo) -> datetime:
    """The instant as the column's type wants it: aware UTC, or naive UTC for a naive column."""
    _require_aware(instant, "window bound")
    utc = instant.astimezone(UTC)
    return utc if info.created_at_has_timezone else utc.replace(tzinfo=None)


# --- reading ---------------------------------------------------------------------------------


def _pg_select(table: PaymentsTable) -> sql.Composed:
    refunded = sql.SQL("NULL::text")
    if table.refunded_column:
        refunded = sql.SQL("{}::text").format(sql.Identifier(table.refunded_column))
    # EXTRACT(EPOCH ...) is numeric (exact) since PostgreSQL 14; for a naive timestamp it counts
    # from 1970-01-01 00:00 as if UTC, whatever the session's TimeZone.
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


def _pg_copy(conn: psycopg.Connection, select: sql.Composable) -> pl.DataFrame:
    """COPY ... TO STDOUT as CSV, streamed into one buffer: no Python object per row."""
    buffer = io.BytesIO()
    query = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(select)
    with conn.cursor() as cur, cur.copy(query) as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    # CSV NULL is an unquoted empty field (-> null); an empty string is "" (-> "").
    return pl.read_csv(buffer, has_header=False, schema=_RAW_SCHEMA, raise_if_empty=False)


def _duck_select(table: PaymentsTable) -> str:
    def text(column: str | None) -> str:
        return f"CAST({_quote(column) if column else 'NULL'} AS VARCHAR)"

    return (
        f"SELECT {text(table.id_column)} AS id, {text(table.amount_column)} AS amount, "
        f"{text(table.currency_column)} AS currency, {text(table.status_column)} AS status, "
        f"epoch_us({_quote(table.created_at_column)}) AS created_us, {text(table.refunded_column)} AS refunded "
        f"FROM {_quoted_table(table)}"
    )


def _duck_frame(conn: duckdb.DuckDBPyConnection, query: str, params: list[Any]) -> pl.DataFrame:
    return pl.from_arrow(conn.sql(query, params=params).to_arrow_table()).cast(_RAW_SCHEMA)  # type: ignore[union-attr]


# --- normalisation ---------------------------------------------------------------------------


def _normalise(raw: pl.DataFrame, table: PaymentsTable) -> pl.DataFrame:
    """Raw text rows -> `PAYMENTS_SCHEMA`. A row that cannot be read exactly is kept, marked in
    `invalid_column` / `invalid_reason` (naming the table's column), for the core to quarantine:
    one bad row must not hide the rest of the day."""
    frame = raw.with_columns(pl.col("currency").str.strip_chars().str.to_uppercase())
    checks = [
        (pl.col("id").is_null(), table.id_column, pl.lit(f"NULL in id column {table.id_column!r}")),
        (pl.col("created_us").is_null(), table.created_at_column, pl.lit(f"NULL in created_at column {table.created_at_column!r}")),
        (pl.col("currency").is_null(), table.currency_column, pl.lit(f"NULL in currency column {table.currency_column!r}")),
        (~pl.col("currency").is_in(sorted(ISO_CODES)), table.currency_column,
         pl.format(f"{{}} in currency column {table.currency_column!r} is not an ISO 4217 currency code", pl.col("currency"))),
        (pl.col("amount").is_null(), table.amount_column, pl.lit(f"NULL in amount column {table.amount_column!r}")),
    ]  # fmt: skip
    frame = _mark(frame.with_columns(invalid_column=pl.lit(None, pl.String), invalid_reason=pl.lit(None, pl.String)), checks)
    exp = (
        pl.col("currency").replace_strict(exponents_table(), default=2, return_dtype=pl.Int64)
        if table.amount_unit == "major"
        else pl.lit(0, pl.Int64)
    )
    frame = _to_minor(frame.with_columns(_exp=exp), "amount", table.amount_column, table)
    if table.refunded_column:
        frame = frame.with_columns(pl.col("refunded").fill_null("0"))  # NULL refunded = nothing refunded
        frame = _to_minor(frame, "refunded", table.refunded_column, table)
    else:
        frame = frame.with_columns(refunded=pl.lit(None, pl.Int64))
    frame = frame.with_columns(created_at=pl.from_epoch("created_us", "us").dt.replace_time_zone("UTC"))
    return conform(frame, PAYMENTS_SCHEMA, f"payments table {table.table}")


def _mark(frame: pl.DataFrame, checks: list[tuple[pl.Expr, str, pl.Expr]]) -> pl.DataFrame:
    """Set (`invalid_column`, `invalid_reason`) from the first failing check, on rows still valid."""
    column, reason = pl.col("invalid_column"), pl.col("invalid_reason")
    for failed, name, why in reversed(checks):  # reversed: the first check wins
        hit = failed.fill_null(False) & pl.col("invalid_reason").is_null()
        column, reason = pl.when(hit).then(pl.lit(name)).otherwise(column), pl.when(hit).then(why).otherwise(reason)
    return frame.with_columns(invalid_column=column, invalid_reason=reason)


def _to_minor(frame: pl.DataFrame, column: str, configured: str, table: PaymentsTable) -> pl.DataFrame:
    """Exact text -> Int64 minor units: vectorised for plain decimals, `Decimal` for the rest.

    A value that is not a whole number of minor units (or not a number) leaves the amount null and
    marks the row invalid, naming the column and the value.
    """
    # The regex runs once into helper columns; the rest is integer arithmetic on them.
    frame = frame.with_columns(_parts=pl.col(column).str.extract_groups(_PLAIN_NUMBER)).unnest("_parts")
    frac = pl.col("_frac").fill_null("").str.strip_chars_end("0")
    # 10^(decimals still free): null (-> fallback, which refuses it) when the fraction is too long.
    room = (pl.col("_exp") - frac.str.len_chars().cast(pl.Int64)).replace_strict(
        _POW10, default=None, return_dtype=pl.Int64
    )
    scale = pl.col("_exp").replace_strict(_POW10, return_dtype=pl.Int64)
    magnitude = pl.col("_int").cast(pl.Int64) * scale + frac.cast(pl.Int64, strict=False).fill_null(0) * room
    minor = pl.when(pl.col("_sign") == "-").then(-magnitude).otherwise(magnitude)
    frame = frame.with_columns(_minor=minor).drop("_sign", "_int", "_frac")
    slow = frame.with_row_index("_row").filter(pl.col("_minor").is_null() & pl.col("invalid_reason").is_null())
    if not slow.is_empty():
        exact = [_exact_minor(r, column, configured, table) for r in slow.iter_rows(named=True)]
        values = pl.Series([v if isinstance(v, int) else None for v in exact], dtype=pl.Int64)
        problems = pl.Series([v if isinstance(v, str) else None for v in exact], dtype=pl.String)
        hit = problems.is_not_null()
        frame = frame.with_columns(
            frame["_minor"].scatter(slow["_row"], values),
            frame["invalid_column"].scatter(slow["_row"].filter(hit), configured),
            frame["invalid_reason"].scatter(slow["_row"].filter(hit), problems.filter(hit)),
        )
    return frame.with_columns(pl.col("_minor").alias(column)).drop("_minor")


def _exact_minor(row: dict[str, Any], column: str, configured: str, table: PaymentsTable) -> int | str:
    """One value the fast path could not take: exact through `Decimal`, or what is wrong with it."""
    text, places = row[column], row["_exp"]
    where = f"{text!r} in {column} column {configured!r}"
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return f"{where} is not a number"
    with localcontext() as ctx:
        ctx.prec = max(64, len(text) + places + 2)  # scaleb must not round
        scaled = value.scaleb(places) if value.is_finite() else value
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        unit = (
            f"a whole number of minor units of {row['currency']} ({places} decimals)"
            if table.amount_unit == "major"
            else "a whole number (RECON_PAYMENTS_AMOUNT_UNIT is minor)"
        )
        return f"{where} is not {unit}"
    if not _INT64[0] <= int(scaled) <= _INT64[1]:
        return f"{where} is out of range for 64-bit minor units"
    return int(scaled)


# --- writing ---------------------------------------------------------------------------------


def _insert(conn: Any, table: PaymentsTable, row: NewPayment, ids: list[str]) -> InsertResult:
    if _is_postgres(table.url):
        try:
            with conn.transaction():
                info = _inspect(conn, table)
                # Keyed by (table, the payment's smallest id): two syncs of the same payment queue
                # here, whichever id kind each writes; other payments don't.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))", [table.table, min(ids)])
                return _check_and_write(conn, table, row, info, "%s", ids)
        except psycopg.errors.UniqueViolation:
            return InsertResult.ALREADY_PRESENT
        except psycopg.DataError as exc:
            raise _write_error(table, row, exc) from None
    with _DUCKDB_WRITE_LOCK:
        conn.begin()
        try:
            result = _check_and_write(conn, table, row, _inspect(conn, table), "?", ids)
            (conn.commit if result is InsertResult.INSERTED else conn.rollback)()
            return result
        except (duckdb.ConstraintException, duckdb.TransactionException):
            # A unique index, or a write-write conflict on the id (DuckDB detects some only at
            # commit): another writer put the row there first.
            _rollback_quietly(conn)
            return InsertResult.ALREADY_PRESENT
        except duckdb.ConversionException as exc:
            _rollback_quietly(conn)
            raise _write_error(table, row, exc) from None
        except BaseException:
            _rollback_quietly(conn)
            raise


def _rollback_quietly(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open (a failed commit has already ended it)."""
    try:
        conn.rollback()
    except duckdb.TransactionException:
        pass


def _check_and_write(conn: Any, table: PaymentsTable, row: NewPayment, info: TableInfo, mark: str, ids: list[str]) -> InsertResult:
    """Inside the caller's transaction: refuse a present id, else insert and verify the stored amount."""
    id_column = _quote(table.id_column)
    text = "CAST({} AS VARCHAR)" if mark == "?" else "{}::text"
    present = conn.execute(
        f"SELECT 1 FROM {_quoted_table(table)} WHERE {text.format(id_column)} IN ({', '.join([mark] * len(ids))}) LIMIT 1", ids
    ).fetchone()
    if present:
        return InsertResult.ALREADY_PRESENT
    values: dict[str, Any] = {
        table.id_column: row.id,
        table.amount_column: _in_unit(row.amount, row.currency, table),
        table.currency_column: row.currency,
        table.status_column: row.status,
        table.created_at_column: _bound(row.created_at, info),
    }
    if table.refunded_column:
        values[table.refunded_column] = None if row.refunded is None else _in_unit(row.refunded, row.currency, table)
    stored = [c for c in (table.amount_column, table.refunded_column) if c and values[c] is not None]
    # Strings go to PostgreSQL as 'unknown' and to DuckDB as VARCHAR, so the server casts them
    # to the column's type exactly; RETURNING shows what it kept, which we verify below.
    returning = ", ".join(text.format(_quote(c)) for c in stored) or "1"
    returned = conn.execute(
        f"INSERT INTO {_quoted_table(table)} ({', '.join(map(_quote, values))}) "
        f"VALUES ({', '.join([mark] * len(values))}) RETURNING {returning}",
        list(values.values()),
    ).fetchone()
    for column, kept in zip(stored, returned or (), strict=False):
        if Decimal(kept) != Decimal(values[column]):
            # Raising rolls the transaction back: nothing is half-written.
            raise PaymentsDataError(
                f"payments table {table.table}: row {row.id!r} would store {values[column]} ({table.amount_unit} "
                f"units of {row.currency}) as {kept} in column {column!r} ({info.columns.get(column, '?')}), "
                "which cannot hold the amount exactly"
            )
    return InsertResult.INSERTED


def _in_unit(minor: int, currency: str, table: PaymentsTable) -> str:
    """Exact text of the amount in the table's unit: '1999' (minor), '19.99' USD or '1.234' KWD (major)."""
    if table.amount_unit == "minor":
        return str(minor)
    return format(to_major(minor, currency), "f")


def _write_error(table: PaymentsTable, row: NewPayment, exc: Exception) -> PaymentsDataError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return PaymentsDataError(f"payments table {table.table}: cannot insert row {row.id!r}: {first_line}")


__all__ = [
    "InsertResult",
    "NewPayment",
    "PaymentsDataError",
    "TableInfo",
    "find_ids",
    "insert_payment",
    "read_window",
    "validate",
]
