"""The input assets' tables on PostgreSQL (see `asset_tables`): one transaction per write, rows
travelling with `COPY` (CSV) both ways.

Timestamps are read back as microseconds since the epoch, so a `Datetime("us", "UTC")` column
comes back exactly as it was written. Writers of one table queue on an advisory lock until they
commit (runs of a backfill may write at once); the lock also makes `create table if not exists`
safe.
"""

import io
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import LiteralString

import polars as pl
import psycopg
from psycopg import sql

from recon_dagster.settings import redact_url, scrub
from recon_dagster.stores.asset_slice import AssetTablesError, Slice, with_null_columns

_CSV_DATETIME = "%Y-%m-%d %H:%M:%S%.6f"
_CSV_TIME = "%H:%M:%S%.6f"


def write(url: str, schema: str, table: str, frame: pl.DataFrame, rows: Slice) -> None:
    """Replace the slice's rows of `schema.table` with `frame`, in one transaction."""
    name, target = _name(schema, table), sql.Identifier(schema, table)
    with _connect(url) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [f"recon_dagster.io:{name}"])
        found = conn.execute("select 1 from pg_namespace where nspname = %s", [schema]).fetchone()
        if found is None:
            try:
                with conn.transaction():  # a savepoint: losing a race to create it is fine
                    create = sql.SQL("create schema if not exists {}")
                    conn.execute(create.format(sql.Identifier(schema)))
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema):
                pass
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(n), _pg_type(n, t))
            for n, t in frame.schema.items()
        )
        conn.execute(sql.SQL("create table if not exists {} ({})").format(target, columns))
        # Columns a newer version added (an older one created the table): old rows read null.
        existing = {row[0] for row in _columns(conn, name) or []}
        for n, t in frame.schema.items():
            if n not in existing:
                add = sql.SQL("alter table {} add column if not exists {} {}")
                conn.execute(add.format(target, sql.Identifier(n), _pg_type(n, t)))
        delete = sql.SQL("DELETE FROM {} WHERE {}").format(target, _where(rows))
        conn.execute(delete, [rows.low, rows.high])
        if frame.height:
            buffer = io.BytesIO()
            _for_csv(frame).write_csv(
                buffer,
                include_header=False,
                datetime_format=_CSV_DATETIME,
                time_format=_CSV_TIME,
                null_value="",
            )
            names = sql.SQL(", ").join(map(sql.Identifier, frame.columns))
            copy_in = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(target, names)
            with conn.cursor() as cur, cur.copy(copy_in) as copy:
                view = buffer.getbuffer()
                for offset in range(0, len(view), 1 << 20):
                    copy.write(view[offset : offset + (1 << 20)])
                del view


def read(
    url: str, schema: str, table: str, rows: Slice, skip: Collection[str] = ()
) -> pl.DataFrame:
    """The slice's rows of `schema.table`, with the types they were written with; the columns in
    `skip` as typed nulls."""
    name = _name(schema, table)
    with _connect(url) as conn:
        # One snapshot for the columns' counts and the rows (see `with_null_columns`).
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        columns = _columns(conn, name)
        if columns is None:
            raise AssetTablesError(f"{name} does not exist: materialize {table} first")
        types = pl.Schema((column, _polars_type(typ, p, s)) for column, typ, p, s in columns)
        target, where = sql.Identifier(schema, table), _where(rows)
        counts = sql.SQL(", ").join(
            sql.SQL("count({})").format(sql.Identifier(column)) for column in types
        )
        query = sql.SQL("SELECT count(*), {} FROM {} WHERE {}").format(counts, target, where)
        found = conn.execute(query, [rows.low, rows.high]).fetchone()
        height, *filled = found or (0,)
        if not height:
            return pl.DataFrame(schema=types)
        present = [
            (column, typ)
            for (column, typ, _, _), n in zip(columns, filled, strict=True)
            if rows.reads(column, n, skip)
        ]
        select = sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(_read_expr(column, typ), sql.Identifier(column))
            for column, typ in present
        )
        query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
            select, target, _where(rows, literal=True)
        )
        buffer = io.BytesIO()
        copy_out = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(query)
        with conn.cursor() as cur, cur.copy(copy_out) as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    raw = pl.read_csv(
        buffer, has_header=False, schema={n: pl.String() for n, _ in present}, quote_char='"'
    )
    frame = raw.select(
        _convert(column, typ, types[column]).alias(column) for column, typ in present
    )
    return with_null_columns(frame, types)


@contextmanager
def _connect(url: str) -> Iterator[psycopg.Connection]:
    """One transaction on a fresh connection: committed when the block succeeds."""
    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except Exception as exc:  # psycopg's errors, and conninfo's, which may quote the URL
        where = redact_url(url)
        raise AssetTablesError(
            f"cannot connect to the asset storage at {where}: {scrub(exc, url)}"
        ) from None
    with conn:  # commits, or rolls back on an exception, then closes
        yield conn


def _name(schema: str, table: str) -> str:
    """`"schema"."table"`, as text (for messages, locks and `to_regclass`)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))


def _where(rows: Slice, *, literal: bool = False) -> sql.Composed:
    """The slice's condition: with its bounds as parameters (`%s`), or as literals (`COPY`
    takes no parameters)."""
    column = sql.Identifier(rows.column)
    if literal:
        bounds = sql.Literal(rows.low), sql.Literal(rows.high)
        return sql.SQL("{0} >= {1} AND {0} < {2}").format(column, *bounds)
    return sql.SQL("{0} >= %s AND {0} < %s").format(column)


def _pg_type(name: str, dtype: pl.DataType) -> sql.Composable:
    """The PostgreSQL column type that holds a Polars column exactly."""
    if isinstance(dtype, pl.Datetime):
        return sql.SQL("timestamptz" if dtype.time_zone is not None else "timestamp")
    if isinstance(dtype, pl.Decimal):
        digits = sql.Literal(dtype.precision or 38), sql.Literal(dtype.scale or 0)
        return sql.SQL("numeric({},{})").format(*digits)
    simple: dict[type[pl.DataType], LiteralString] = {
        pl.String: "text",
        pl.Categorical: "text",
        pl.Enum: "text",
        pl.Null: "text",
        pl.Boolean: "boolean",
        pl.Int8: "smallint",
        pl.Int16: "smallint",
        pl.Int32: "integer",
        pl.Int64: "bigint",
        pl.UInt8: "smallint",
        pl.UInt16: "integer",
        pl.UInt32: "bigint",
        pl.UInt64: "numeric(20,0)",
        pl.Float32: "real",
        pl.Float64: "double precision",
        pl.Date: "date",
        pl.Time: "time",
        pl.Duration: "interval",
    }
    for polars_type, pg in simple.items():
        if dtype == polars_type or isinstance(dtype, polars_type):
            return sql.SQL(pg)
    raise AssetTablesError(
        f"column {name!r}: Polars type {dtype} has no PostgreSQL column type here"
    )


def _for_csv(frame: pl.DataFrame) -> pl.DataFrame:
    """Values in forms PostgreSQL's COPY parses: UTC for aware timestamps, text for durations."""
    out = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            out.append(col.dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        elif isinstance(dtype, pl.Duration):
            out.append((col.dt.total_microseconds().cast(pl.String) + " microseconds").alias(name))
        elif isinstance(dtype, (pl.Categorical, pl.Enum)):
            out.append(col.cast(pl.String))
    return frame.with_columns(out) if out else frame


def _columns(conn: psycopg.Connection, name: str) -> list[tuple[str, str, int, int]] | None:
    """(name, type name, numeric precision, scale) per column in table order; None without a
    table."""
    found = conn.execute("select to_regclass(%s)", [name]).fetchone()
    if found is None or found[0] is None:
        return None
    return conn.execute(
        """select a.attname, t.typname,
                  coalesce(information_schema._pg_numeric_precision(a.atttypid, a.atttypmod), 0),
                  coalesce(information_schema._pg_numeric_scale(a.atttypid, a.atttypmod), 0)
           from pg_attribute a join pg_type t on t.oid = a.atttypid
           where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped
           order by a.attnum""",
        [name],
    ).fetchall()


def _read_expr(name: str, typname: str) -> sql.Composable:
    """The column as COPY should send it: times as microseconds since the epoch (exact)."""
    if typname in ("timestamptz", "timestamp", "interval"):
        epoch = sql.SQL("(extract(epoch from {}) * 1000000)::bigint")
        return epoch.format(sql.Identifier(name))
    return sql.Identifier(name)


def _polars_type(typname: str, precision: int, scale: int) -> pl.DataType:
    return {
        "timestamptz": pl.Datetime("us", "UTC"),
        "timestamp": pl.Datetime("us"),
        "interval": pl.Duration("us"),
        "bool": pl.Boolean(),
        "int2": pl.Int16(),
        "int4": pl.Int32(),
        "int8": pl.Int64(),
        "float4": pl.Float32(),
        "float8": pl.Float64(),
        "date": pl.Date(),
        "time": pl.Time(),
        "numeric": pl.Decimal(precision or 38, scale),
    }.get(typname, pl.String())


def _convert(name: str, typname: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if typname in ("timestamptz", "timestamp", "interval"):
        return col.cast(pl.Int64).cast(dtype)
    if typname == "bool":
        return (col == "t").alias(name)
    if typname == "date":
        return col.str.to_date("%Y-%m-%d")
    if typname == "time":
        return col.str.to_time()
    if typname in ("float4", "float8"):
        special = col.replace({"Infinity": "inf", "-Infinity": "-inf"})
        return special.cast(dtype)
    return col.cast(dtype)
