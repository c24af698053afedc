"""MySQL and MariaDB (`mysql://` or `mariadb://user:password@host:port/database`).

The day's window is read by connectorx straight into Arrow (one query, no Python object per
row); lookups by id, introspection and inserts use PyMySQL, which can bind parameters. Every
column is selected as text, so DECIMAL amounts never pass through a float. Times:
- DATETIME holds wall times: read in RECON_DB_TIMEZONE (`TIMESTAMPDIFF` from the epoch's wall
  time gives them without the session's time zone getting involved).
- TIMESTAMP holds instants (MySQL stores them as UTC): `UNIX_TIMESTAMP(column)` returns the
  stored value as is. Comparisons with a TIMESTAMP go through the session's time zone, which
  connectorx does not let us set, so the window is read with a 3-hour margin (a DST fold at most)
  and cut exactly afterwards; PyMySQL sessions run at +00:00.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import polars as pl
import pymysql

from recon_dagster.settings import PaymentsTable
from recon_dagster.sources.payments_db.connections import cannot_connect, read_arrow
from recon_dagster.sources.payments_db.introspect import TableInfo, table_info
from recon_dagster.sources.payments_db.normalise import RAW_SCHEMA
from recon_dagster.sources.payments_db.writing import (
    Dialect,
    InsertResult,
    NewPayment,
    account_condition,
    check_and_write,
    column_time,
    quoted_table,
    write_error,
)

EXACT_WINDOW: bool = False  # TIMESTAMP windows are read with a margin (see the module)
SCHEMES: tuple[str, ...] = ("mysql://", "mariadb://")
DIALECT = Dialect(
    quote=lambda name: "`" + name.replace("`", "``") + "`",
    mark="%s",
    text="CAST({} AS CHAR)",
    returning=False,
)
_TIMESTAMPS = {"timestamp": True, "datetime": False, "date": False}
_MARGIN = timedelta(hours=3)
_LOCK_WAIT_SECONDS = 60
# Errors that mean "the column cannot take this value": out of range, truncated, wrong value, too
# long.
_DATA_ERRORS = {1264, 1265, 1292, 1366, 1406}


class SharedTlsConnection(pymysql.connections.Connection):
    """A PyMySQL connection whose default TLS context is made once per process.

    Without TLS options PyMySQL's mode is PREFERRED (TLS when the server offers it, no
    certificate checked), and it builds a new SSL context for every connection, which loads the
    system's CA bundle it then never uses: ~30 ms of CPU, most of a local connection's cost. A
    context serves any number of connections, so this one is built once. PyMySQL has no setting
    for it (passing a context as `ssl=` would make TLS required), hence the override; explicit
    TLS options still get PyMySQL's own context.
    """

    _preferred: ClassVar[ssl.SSLContext | None] = None

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        # typeshed's PyMySQL stub leaves this private method out (PyMySQL 1.2 has it; should a
        # release drop it, test_mysql_connections_of_a_process_share_one_default_tls_context fails).
        make = super()._create_ssl_ctx  # pyright: ignore[reportAttributeAccessIssue]
        if sslp:
            return make(sslp)
        preferred = SharedTlsConnection._preferred
        if preferred is None:
            preferred = SharedTlsConnection._preferred = make(sslp)
        return preferred


@contextmanager
def connect(
    table: PaymentsTable, *, write: bool = False, brief: bool = False
) -> Iterator[pymysql.connections.Connection]:
    parts = urlsplit(table.url)
    try:
        conn = SharedTlsConnection(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=unquote(parts.path.lstrip("/")) or None,
            connect_timeout=10,
            charset="utf8mb4",
            autocommit=False,
            init_command="SET time_zone = '+00:00'",
        )
    except pymysql.MySQLError as exc:
        raise cannot_connect(table.url, exc) from None
    try:
        yield conn
    finally:
        conn.close()


def inspect(conn: pymysql.connections.Connection, table: PaymentsTable) -> TableInfo:
    database, _, name = table.table.rpartition(".")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM "
            "information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s ORDER BY "
            "ORDINAL_POSITION",
            [database or None, name],
        )
        rows = cur.fetchall()
    found = (
        (f"{rows[0][0]}.{rows[0][1]}", {row[2]: row[3].lower() for row in rows}) if rows else None
    )
    return table_info(table, found, case_sensitive=False, timestamp_zone=_TIMESTAMPS.get)


def read_window(
    conn: Any,
    table: PaymentsTable,
    info: TableInfo,
    lo: datetime,
    hi: datetime,
    most: int | None = None,  # every window is read here, whatever its size
) -> pl.DataFrame:
    ts = DIALECT.quote(table.created_at_column)
    if info.created_at_has_timezone:
        # Epoch seconds, compared in whatever time zone connectorx's session has (see above).
        start, end = int((lo - _MARGIN).timestamp()), int((hi + _MARGIN).timestamp()) + 1
        where = f"{ts} >= FROM_UNIXTIME({start}) AND {ts} < FROM_UNIXTIME({end})"
    else:
        where = f"{ts} >= '{lo:%Y-%m-%d %H:%M:%S.%f}' AND {ts} < '{hi:%Y-%m-%d %H:%M:%S.%f}'"
    url = "mysql://" + table.url.split("://", 1)[1]
    where += account_condition(table, DIALECT.quote)
    return read_arrow(url, f"{_select(table, info)} WHERE {where}", table, RAW_SCHEMA)


def find_ids(
    conn: pymysql.connections.Connection,
    table: PaymentsTable,
    info: TableInfo,
    ids: list[str],
    window: Sequence[tuple[str, datetime]],
) -> pl.DataFrame:
    ts = DIALECT.quote(table.created_at_column)
    conditions = [
        f"CAST({DIALECT.quote(table.id_column)} AS CHAR) IN ({', '.join(['%s'] * len(ids))})"
    ]
    conditions += [f"{ts} {op} %s" for op, _ in window]
    with conn.cursor() as cur:
        cur.execute(
            f"{_select(table, info)} WHERE {' AND '.join(conditions)}",
            [*ids, *(_naive(b) for _, b in window)],
        )
        rows = cur.fetchall()
    conn.rollback()  # end the read's snapshot
    return pl.DataFrame(rows, schema=RAW_SCHEMA, orient="row")


def insert(
    conn: pymysql.connections.Connection, table: PaymentsTable, row: NewPayment, ids: list[str]
) -> InsertResult:
    """In its own transaction, under a named lock (`GET_LOCK`) keyed by (table, the payment's
    smallest id). A lock rather than relying on a unique index: it also covers the payment's other
    id (charge and PaymentIntent) and tables without such an index; where the index exists, an
    application's concurrent insert still turns into ALREADY_PRESENT through its duplicate-key
    error.
    """
    digest = hashlib.sha1(f"{table.url}\0{table.table}\0{min(ids)}".encode()).hexdigest()
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, %s)", [f"recon_dagster:{digest}", _LOCK_WAIT_SECONDS])
        if (cur.fetchone() or (0,))[0] != 1:
            raise TimeoutError(
                f"payments table {table.table}: another sync held the lock on {row.id!r} for "
                f"{_LOCK_WAIT_SECONDS} s"
            )
        try:
            conn.begin()
            info = inspect(conn, table)

            def run(statement: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
                cur.execute(statement, list(params))
                return cur.fetchone()

            result = check_and_write(
                run,
                DIALECT,
                table,
                row,
                info,
                ids,
                _naive(column_time(row.created_at, info, table.db_timezone)),
            )
            (conn.commit if result is InsertResult.INSERTED else conn.rollback)()
            return result
        except pymysql.err.IntegrityError as exc:
            conn.rollback()
            if exc.args and exc.args[0] == 1062:  # duplicate key: the row got there first
                return InsertResult.ALREADY_PRESENT
            raise write_error(table, row, exc) from None
        except pymysql.MySQLError as exc:
            conn.rollback()
            if exc.args and exc.args[0] in _DATA_ERRORS:
                raise write_error(table, row, exc) from None
            raise
        except BaseException:
            conn.rollback()
            raise
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", [f"recon_dagster:{digest}"])


def _naive(value: datetime) -> datetime:
    """PyMySQL sends datetimes without their zone: aware ones go as UTC (the session's zone)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _select(table: PaymentsTable, info: TableInfo) -> str:
    q = DIALECT.quote

    def text(column: str | None) -> str:
        return f"CAST({q(column)} AS CHAR)" if column else "CAST(NULL AS CHAR)"

    created = q(table.created_at_column)
    created_us = (
        f"CAST(UNIX_TIMESTAMP({created}) * 1000000 AS SIGNED)"
        if info.created_at_has_timezone
        else f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {created})"
    )
    tables = quoted_table(table.table, q)
    return (
        f"SELECT {text(table.id_column)} AS id, {text(table.amount_column)} AS amount, "
        f"{text(table.currency_column)} AS currency, "
        f"{text(table.status_column)} AS status, {created_us} AS created_us, "
        f"{text(table.refunded_column)} AS refunded FROM {tables}"
    )
