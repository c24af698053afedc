"""A plain DB-API connection to any of the four payments databases, for tests to fill tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import duckdb
import psycopg
import pymysql

from recon_dagster.sources.payments_db.mysql import SharedTlsConnection

KINDS = ("duckdb", "postgres", "mysql", "sqlite")


def kind_of(url: str) -> str:
    for prefix, kind in (
        ("duckdb:", "duckdb"),
        ("sqlite:", "sqlite"),
        ("mysql:", "mysql"),
        ("mariadb:", "mysql"),
    ):
        if url.startswith(prefix):
            return kind
    return "postgres"


@contextmanager
def dbapi(url: str) -> Iterator[tuple[Any, str]]:
    """(connection, placeholder); committed and closed on exit. MySQL sessions are UTC."""
    kind = kind_of(url)
    if kind == "duckdb":
        conn: Any = duckdb.connect(url.removeprefix("duckdb:///"))
    elif kind == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    elif kind == "mysql":
        conn = mysql_connect(url, url.rsplit("/", 1)[1])
    else:
        conn = psycopg.connect(url, autocommit=True)
    try:
        yield conn, ("?" if kind in ("duckdb", "sqlite") else "%s")
        conn.commit()
    finally:
        conn.close()


def execute(url: str, statement: str, rows: Sequence[Sequence[Any]] = ()) -> None:
    """One statement (`{}` stands for the placeholder), once, or once per row."""
    with dbapi(url) as (conn, mark):
        cur = conn.cursor()
        if rows:
            cur.executemany(statement.format(mark), [list(r) for r in rows])
        else:
            cur.execute(statement)


def mysql_connect(url: str, database: str | None = None) -> pymysql.connections.Connection:
    """A test's own autocommit connection (UTC session) to the server of `url`."""
    parts = urlsplit(url)
    return SharedTlsConnection(
        host=parts.hostname,
        port=parts.port or 3306,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
        autocommit=True,
        connect_timeout=3,
        init_command="SET time_zone = '+00:00'",
    )
