"""The report store's database (a DuckDB file or PostgreSQL): connections, one transaction per
operation, `?` placeholders on both, the versioned migrations, and advisory locks.

DuckDB allows one writer process per file, so connections are opened per operation
(`duckdb_files`).
"""

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb

from recon_dagster.settings import redact_url, scrub
from recon_dagster.stores.duckdb_files import open_file
from recon_dagster.stores.migrations import MIGRATIONS

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ReportStoreError(RuntimeError):
    """The store cannot be reached or used; the message never carries a password."""


class ReportStoreUnreachable(ReportStoreError):
    """The PostgreSQL store refused or dropped the connection (down, restarting): worth waiting
    for, unlike a store that is full or refuses the write."""


@dataclass(frozen=True)
class Dialect:
    name: str
    json: str
    double: str


DUCKDB = Dialect("duckdb", "JSON", "DOUBLE")
POSTGRESQL = Dialect("postgresql", "JSONB", "DOUBLE PRECISION")


class StoreDatabase:
    """Where the store lives. `schema`: PostgreSQL's, or the first of the URL's `search_path`."""

    def __init__(self, url: str, *, schema: str | None = None, lock_timeout: float = 30.0):
        self.url = url
        self.lock_timeout = lock_timeout
        self.path: Path | None = None
        if url.startswith("duckdb:///"):
            raw = url[len("duckdb:///") :]
            if not raw:
                raise ReportStoreError(
                    "a duckdb report store URL needs a file path: duckdb:////abs/recon.duckdb"
                )
            self.dialect, self.path = DUCKDB, Path(raw).resolve()
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = POSTGRESQL
            schema = schema or _schema_from_options(url)
        else:
            raise ReportStoreError(
                f"unsupported report store URL {redact_url(url)!r}: use duckdb:/// or postgresql://"
            )
        if schema is not None and not _IDENT.match(schema):
            raise ReportStoreError(
                f"{schema!r} is not a valid schema name (letters, digits, underscores)"
            )
        self.schema = schema
        self._prefix = f'"{schema}".' if schema else ""
        self._migrated = False

    def qualified(self, sql: str) -> str:
        """`sql` with its `{s}` table prefixes replaced by the schema's."""
        return sql.replace("{s}", self._prefix)

    @contextmanager
    def transaction(self) -> Iterator["Session"]:
        """One transaction on a fresh connection: committed on success, rolled back otherwise,
        always closed. The migrations are applied first, once per process."""
        if not self._migrated:
            self.migrate()
        with self._session() as session:
            yield session

    @contextmanager
    def _session(self) -> Iterator["Session"]:
        if self.path is None:
            import psycopg

            try:
                conn = psycopg.connect(self.url)
            except psycopg.Error as exc:
                raise ReportStoreUnreachable(
                    f"cannot connect to report store {redact_url(self.url)}: {exc}"
                ) from None
            try:
                with conn:  # commits, or rolls back on exception, then closes
                    yield Session(self, conn)
            except psycopg.OperationalError as exc:  # the server went away (a restart) mid-way
                raise ReportStoreUnreachable(
                    f"report store {redact_url(self.url)} failed, nothing of this write was "
                    f"kept: {scrub(exc, self.url).splitlines()[0]}"
                ) from None
            return
        with open_file(
            self.path,
            lock_timeout=self.lock_timeout,
            error=ReportStoreError,
            what="report store",
            shared=True,  # small transactions, many of them: see `connect_waiting`
        ) as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                yield Session(self, conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK")
                except Exception:
                    pass
                if isinstance(exc, duckdb.Error):  # e.g. the disk is full
                    raise ReportStoreError(
                        f"writing report store {self.path} failed, nothing of this write was "
                        f"kept: {exc}"
                    ) from None
                raise

    def migrate(self) -> list[int]:
        """Apply pending migrations in one transaction; returns the versions applied now.
        On PostgreSQL an advisory lock makes concurrent callers wait, then find nothing to do."""
        d = self.dialect
        with self._session() as s:
            s.lock("migrate")
            if self.schema:
                s.run(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            s.run(
                self.qualified(
                    "CREATE TABLE IF NOT EXISTS {s}recon_schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
            )
            done = {
                row[0]
                for row in s.run(self.qualified("SELECT version FROM {s}recon_schema_migrations"))
            }
            applied = []
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements[d.name] if isinstance(statements, dict) else statements:
                    sql = statement.replace("{json}", d.json).replace("{double}", d.double)
                    s.run(self.qualified(sql))
                s.run(
                    self.qualified("INSERT INTO {s}recon_schema_migrations (version) VALUES (?)"),
                    (version,),
                )
                applied.append(version)
        self._migrated = True
        return applied


class Session:
    """A connection inside a transaction, with `?` placeholders for both dialects."""

    def __init__(self, db: StoreDatabase, conn: Any):
        self.db, self.conn, self.pg = db, conn, db.dialect is POSTGRESQL

    def run(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        if self.pg:
            cur = self.conn.execute(sql.replace("?", "%s"), tuple(params))
            return cur.fetchall() if cur.description else []
        rel = self.conn.execute(sql, list(params))
        return rel.fetchall() if rel.description else []

    def many(self, sql: str, rows: list[tuple]) -> None:
        if self.pg:
            with self.conn.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), rows)
        else:
            self.conn.executemany(sql, rows)

    def lock(self, kind: str, *parts: str) -> None:
        """Take PostgreSQL's transaction-scoped advisory lock on (kind, schema, *parts): writers
        of the same thing queue until commit. DuckDB needs none: writers take turns per file."""
        if self.pg:
            key = lock_key(kind, self.db.schema or "", *parts)
            self.run("SELECT pg_advisory_xact_lock(?)", (key,))

    def bulk(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        """Many rows at once: COPY on PostgreSQL, an Arrow table scan on DuckDB."""
        if not rows:
            return
        target = self.db.qualified(f"{{s}}{table} ({quoted(columns)})")
        if self.pg:
            with self.conn.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        import pyarrow as pa

        types = self.conn.sql(
            self.db.qualified(f"SELECT {quoted(columns)} FROM {{s}}{table} LIMIT 0")
        ).to_arrow_table()
        data = pa.table(
            [
                pa.array(list(col), type=f.type)
                for col, f in zip(zip(*rows, strict=True), types.schema, strict=True)
            ],
            names=list(columns),
        )
        self.conn.register("_recon_bulk", data)
        try:
            self.conn.execute(f"INSERT INTO {target} SELECT * FROM _recon_bulk")
        finally:
            self.conn.unregister("_recon_bulk")


def quoted(columns: Iterable[str]) -> str:
    """Quoted column list (`at` is reserved in DuckDB)."""
    return ", ".join(f'"{c}"' for c in columns)


def lock_key(*parts: str) -> int:
    """A stable signed 64-bit advisory lock key for these parts."""
    digest = hashlib.blake2b(
        "\x1f".join(("recon_dagster.report_store", *parts)).encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def jsonable(value: Any) -> Any:
    """JSON-safe copy: dates as ISO text, Decimal and non-finite floats as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    if isinstance(value, Decimal) or (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    return value


def json_text(value: Any) -> str:
    """`json.dumps(jsonable(value), allow_nan=False)` for a value whose keys are strings,
    written by the C encoder straight from `value` (dates and Decimals through `default`):
    walking a large day's 200,000 findings in Python first took longer than encoding them.
    Non-finite floats, which `jsonable` writes as strings and the encoder refuses, take the walk."""
    try:
        return json.dumps(value, allow_nan=False, default=_json_scalar)
    except ValueError:  # a non-finite float
        return json.dumps(jsonable(value), allow_nan=False)


def _json_scalar(value: Any) -> str:
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def json_column(value: Any) -> dict[str, Any]:
    """A JSON column's value: psycopg decodes JSONB, DuckDB hands JSON back as text."""
    return json.loads(value) if isinstance(value, str) else value


def _schema_from_options(url: str) -> str | None:
    """The first schema of `?options=-csearch_path%3Dname` in a PostgreSQL URL, if any."""
    for options in parse_qs(urlsplit(url).query).get("options", []):
        match = re.search(r"-c\s*search_path\s*=\s*\"?([A-Za-z_][A-Za-z0-9_]*)", options)
        if match:
            return match.group(1)
    return None
