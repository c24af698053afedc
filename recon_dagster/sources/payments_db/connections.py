"""Connection errors that say what and where, never with the password; and the one connectorx read
the SQLite and MySQL backends share."""

from __future__ import annotations

import polars as pl
import psycopg
import pymysql

from recon_dagster.core.frames import from_arrow
from recon_dagster.settings import ConfigError, PaymentsTable, redact_url, scrub

URL_VARIABLE = "RECON_DATABASE_URL"


class PaymentsUnreachable(ConfigError):
    """The payments database refused or dropped the connection (down, restarting)."""


# MySQL's client error numbers for a server that is gone: can't connect, gone away, lost the
# connection, shutting down.
_MYSQL_GONE = {2003, 2006, 2013, 2055, 1053, 4031}


def connection_lost(exc: BaseException) -> bool:
    """Did the database server refuse or drop the connection (down, restarting)? Not a data or
    SQL error, which waiting would not cure."""
    if isinstance(exc, PaymentsUnreachable):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
    if isinstance(exc, pymysql.OperationalError | pymysql.InterfaceError):
        return not exc.args or exc.args[0] in _MYSQL_GONE or isinstance(exc, pymysql.InterfaceError)
    return False


def cannot_connect(url: str, exc: BaseException, verb: str = "connect to") -> ConfigError:
    return PaymentsUnreachable(URL_VARIABLE, f"cannot {verb} {redact_url(url)} ({scrub(exc, url)})")


def read_arrow(url: str, query: str, table: PaymentsTable, schema: pl.Schema) -> pl.DataFrame:
    """`query`'s rows read by connectorx straight into Arrow (no Python object per row), its
    columns named and typed as `schema`; a failure names the table's URL without the password."""
    # Imported here, not with the module: only SQLite and MySQL tables are read through it, and
    # connectorx costs every other process (a DuckDB or PostgreSQL deployment's report step, the
    # daemon, the webserver) 16 MiB of RSS.
    import connectorx

    try:
        arrow = connectorx.read_sql(url, query, return_type="arrow")
    except Exception as exc:  # connectorx raises RuntimeError/ValueError with the driver's text
        raise RuntimeError(
            f"reading the payments table from {redact_url(table.url)} failed: "
            f"{scrub(exc, table.url)}"
        ) from None
    frame = from_arrow(arrow)
    return frame.rename(dict(zip(frame.columns, schema, strict=True))).cast(schema)
