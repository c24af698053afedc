"""Where `stripe_charges` and `db_payments` live on PostgreSQL: one table per asset, one row per
record.

Built like dagster-duckdb's `DuckDBIOManager`, on Dagster's own `DbIOManager`, which does the
partition bookkeeping: per output it opens one connection, ensures the schema, deletes the run's
partitions' rows and hands the frame to the type handler. Here that is one transaction: the
delete and the new rows are committed together at the end, or not at all.

Rows travel with `COPY` (CSV) both ways. Timestamps are read back as microseconds since the epoch,
so a `Datetime("us", "UTC")` column comes back exactly as it was written.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import cast
from urllib.parse import urlsplit

import polars as pl
import psycopg
from dagster import (
    ConfigurableIOManagerFactory,
    InputContext,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableSchema,
    TimeWindow,
)
from dagster._core.storage.db_io_manager import (
    DbClient,
    DbIOManager,
    DbTypeHandler,
    TablePartitionDimension,
    TableSlice,
    static_where_clause,
)
from psycopg import sql
from pydantic import Field

from recon_dagster.settings import redact_url

# As dagster-duckdb: partition bounds are naive wall-clock timestamps in the partitions' time zone,
# which is why the assets' `partition_expr` shifts their UTC columns with timezone('<tz>', col).
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_CSV_DATETIME = "%Y-%m-%d %H:%M:%S%.6f"
_CSV_TIME = "%H:%M:%S%.6f"


class PostgresIOError(RuntimeError):
    """The asset storage cannot be reached or used; the message never carries a password."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(table_slice: TableSlice) -> str:
    return f"{_quote(table_slice.schema)}.{_quote(table_slice.table)}"


def _time_window_where_clause(dimension: TablePartitionDimension) -> str:
    start, end = cast("TimeWindow", dimension.partitions)
    return (
        f"{dimension.partition_expr} >= '{start.strftime(DATETIME_FORMAT)}' AND "
        f"{dimension.partition_expr} < '{end.strftime(DATETIME_FORMAT)}'"
    )


def _partition_where_clause(dimensions: Sequence[TablePartitionDimension]) -> str:
    return " AND\n".join(
        _time_window_where_clause(d)
        if isinstance(d.partitions, TimeWindow)
        else static_where_clause(d)
        for d in dimensions
    )


def _where(table_slice: TableSlice) -> str:
    return (
        f" WHERE\n{_partition_where_clause(table_slice.partition_dimensions)}"
        if table_slice.partition_dimensions
        else ""
    )


def _redacted(message: str, url: str) -> str:
    password = None
    try:
        password = urlsplit(url).password
    except ValueError:
        pass
    message = message.replace(url, redact_url(url))
    if password:
        message = message.replace(password, "***")
    return " ".join(message.split())


class PostgresClient(DbClient):
    """psycopg connections; one transaction per `connect`, committed when the block succeeds."""

    @staticmethod
    @contextmanager
    def connect(
        context: OutputContext | InputContext, table_slice: TableSlice
    ) -> Iterator[psycopg.Connection]:
        url = context.resource_config["url"]
        try:
            conn = psycopg.connect(url, connect_timeout=10)
        except Exception as exc:  # noqa: BLE001 (psycopg errors, and conninfo parse errors that may quote the URL)
            raise PostgresIOError(
                f"cannot connect to the asset storage at {redact_url(url)}: "
                f"{_redacted(str(exc), url)}"
            ) from None
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    @staticmethod
    def ensure_schema_exists(context: OutputContext, table_slice: TableSlice, connection) -> None:
        # Writers of one table take turns until they commit (runs of a backfill may write at once);
        # the lock also makes `create table if not exists` below safe.
        connection.execute(
            "select pg_advisory_xact_lock(hashtext(%s))",
            [f"recon_dagster.io:{_table(table_slice)}"],
        )
        exists = connection.execute(
            "select 1 from pg_namespace where nspname = %s", [table_slice.schema]
        ).fetchone()
        if exists is None:
            try:
                with connection.transaction():  # a savepoint: losing a race to create it is fine
                    connection.execute(
                        sql.SQL("create schema if not exists {}").format(
                            sql.Identifier(table_slice.schema)
                        )
                    )
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema):
                pass

    @staticmethod
    def delete_table_slice(context: OutputContext, table_slice: TableSlice, connection) -> None:
        if (
            connection.execute("select to_regclass(%s)", [_table(table_slice)]).fetchone()[0]
            is None
        ):
            return  # no table yet: nothing to delete
        connection.execute(f"DELETE FROM {_table(table_slice)}{_where(table_slice)}")

    @staticmethod
    def get_select_statement(table_slice: TableSlice) -> str:
        columns = ", ".join(_quote(c) for c in table_slice.columns) if table_slice.columns else "*"
        return f"SELECT {columns} FROM {_table(table_slice)}{_where(table_slice)}"

    @staticmethod
    def get_table_name(table_slice: TableSlice) -> str:
        return f"{table_slice.database}.{table_slice.schema}.{table_slice.table}"


# -- types --------------------------------------------------------------------------------------


def _pg_type(name: str, dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamptz" if dtype.time_zone is not None else "timestamp"
    if isinstance(dtype, pl.Decimal):
        return f"numeric({dtype.precision or 38},{dtype.scale or 0})"
    simple = {
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
            return pg
    raise PostgresIOError(
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


def _columns(connection, table_slice: TableSlice) -> list[tuple[str, str, int, int]] | None:
    """(name, type name, numeric precision, scale) per column in table order; None without a table."""
    if connection.execute("select to_regclass(%s)", [_table(table_slice)]).fetchone()[0] is None:
        return None
    rows = connection.execute(
        """select a.attname, t.typname,
                  coalesce(information_schema._pg_numeric_precision(a.atttypid, a.atttypmod), 0),
                  coalesce(information_schema._pg_numeric_scale(a.atttypid, a.atttypmod), 0)
           from pg_attribute a join pg_type t on t.oid = a.atttypid
           where a.attrelid = to_regclass(%s) and a.attnum > 0 and not a.attisdropped
           order by a.attnum""",
        [_table(table_slice)],
    ).fetchall()
    wanted = table_slice.columns
    if wanted:
        by_name = {r[0]: r for r in rows}
        missing = [c for c in wanted if c not in by_name]
        if missing:
            raise PostgresIOError(f"{_table(table_slice)} has no column(s) {', '.join(missing)}")
        rows = [by_name[c] for c in wanted]
    return rows


def _read_expr(name: str, typname: str) -> str:
    if typname in ("timestamptz", "timestamp"):
        return f"(extract(epoch from {_quote(name)}) * 1000000)::bigint"
    if typname == "interval":
        return f"(extract(epoch from {_quote(name)}) * 1000000)::bigint"
    return _quote(name)


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


class PolarsPostgresTypeHandler(DbTypeHandler[pl.DataFrame]):
    """Stores Polars frames in PostgreSQL (empty ones too) and loads them back with their types."""

    def handle_output(
        self, context: OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection
    ) -> None:
        table = _table(table_slice)
        columns = ", ".join(f"{_quote(n)} {_pg_type(n, t)}" for n, t in obj.schema.items())
        connection.execute(f"create table if not exists {table} ({columns})")
        # Columns a newer version added (the table was created by an older one): older rows read
        # null.
        existing = {row[0] for row in _columns(connection, table_slice) or []}
        for n, t in obj.schema.items():
            if n not in existing:
                connection.execute(
                    f"alter table {table} add column if not exists {_quote(n)} {_pg_type(n, t)}"
                )
        if obj.height:
            buffer = io.BytesIO()
            _for_csv(obj).write_csv(
                buffer,
                include_header=False,
                datetime_format=_CSV_DATETIME,
                time_format=_CSV_TIME,
                null_value="",
            )
            names = ", ".join(_quote(n) for n in obj.columns)
            with (
                connection.cursor() as cur,
                cur.copy(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)") as copy,
            ):
                view = buffer.getbuffer()
                for offset in range(0, len(view), 1 << 20):
                    copy.write(view[offset : offset + (1 << 20)])
                del view
        # Committed by PostgresClient.connect with the delete that came before, as one transaction.
        context.add_output_metadata(
            {
                "row_count": obj.height,
                "dataframe_columns": MetadataValue.table_schema(
                    TableSchema(
                        columns=[TableColumn(name=n, type=str(t)) for n, t in obj.schema.items()]
                    )
                ),
            }
        )

    def load_input(
        self, context: InputContext, table_slice: TableSlice, connection
    ) -> pl.DataFrame:
        columns = _columns(connection, table_slice)
        if columns is None:
            raise PostgresIOError(
                f"{_table(table_slice)} does not exist: materialize {table_slice.table} first"
            )
        schema = {name: _polars_type(typ, p, s) for name, typ, p, s in columns}
        if not columns or (
            table_slice.partition_dimensions and len(context.asset_partition_keys) == 0
        ):
            return pl.DataFrame(schema=schema)
        select = ", ".join(
            f"{_read_expr(name, typ)} AS {_quote(name)}" for name, typ, _, _ in columns
        )
        query = f"SELECT {select} FROM {_table(table_slice)}{_where(table_slice)}"
        buffer = io.BytesIO()
        with (
            connection.cursor() as cur,
            cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy,
        ):
            for chunk in copy:
                buffer.write(chunk)
        if buffer.tell() == 0:
            return pl.DataFrame(schema=schema)
        buffer.seek(0)
        raw = pl.read_csv(
            buffer, has_header=False, schema={name: pl.String() for name in schema}, quote_char='"'
        )
        return raw.select(
            _convert(name, typ, schema[name]).alias(name) for name, typ, _, _ in columns
        )

    @property
    def supported_types(self):
        return [pl.DataFrame]


class PostgresPolarsIOManager(ConfigurableIOManagerFactory):
    """Polars frames in PostgreSQL tables, `<schema>.<asset name>`, partitions by `partition_expr`.

    `url` is a libpq URL (`postgresql://user:pass@host:5432/db`); pass it as `dg.EnvVar` when it
    carries a password.
    """

    url: str = Field(description="PostgreSQL URL, postgresql://user:password@host:port/database.")
    schema_: str = Field(
        default="recon_assets", alias="schema", description="Schema holding the asset tables."
    )

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=PostgresClient(),
            database=_database_name(self.url),
            schema=self.schema_,
            type_handlers=[PolarsPostgresTypeHandler()],
            default_load_type=pl.DataFrame,
            io_manager_name="PostgresPolarsIOManager",
        )


def _database_name(url: str) -> str:
    try:
        return urlsplit(url).path.lstrip("/") or "postgres"
    except ValueError:
        return "postgres"
