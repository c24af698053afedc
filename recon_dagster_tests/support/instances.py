"""Dagster instances as users run them, and throwaway PostgreSQL databases for them.

`DagsterInstance.ephemeral()` keeps its event log in memory, unsharded; the instances users run
differ (the default SQLite one shards its event log by run), and code that works on one can fail
on the other. Tests therefore build instances the way a deployment does: a `DAGSTER_HOME` holding
one of the repository's instance files.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]


def fresh_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new, uniquely named database, dropped (FORCE) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def sqlite_home(root: Path, monkeypatch) -> dg.DagsterInstance:
    """The instance users get from `recon-dagster demo` / `dagster dev`: a DAGSTER_HOME holding the
    repository's dagster.yaml, so Dagster's default storage (SQLite, run-sharded event log)."""
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return dg.DagsterInstance.get()


def postgres_home(root: Path, database_url: str, monkeypatch) -> dg.DagsterInstance:
    """The production instance: a DAGSTER_HOME holding dagster.postgres.yaml, on `database_url`."""
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
    parts = urlsplit(database_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", parts.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", parts.password or "unused-with-trust-auth")
    monkeypatch.setenv("DAGSTER_PG_HOST", parts.hostname or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(parts.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_DB", parts.path.lstrip("/"))
    return dg.DagsterInstance.get()
