"""Shared fixtures.

PostgreSQL: tests use `RECON_TEST_POSTGRES_URL` (default: local trust auth) and are skipped when it
is unreachable, unless `RECON_REQUIRE_POSTGRES=1`, in which case they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from recon_dagster.settings import redact_url
from recon_dagster.testing.stripe_server import StripeServer
from recon_dagster_tests.instances import fresh_database, postgres_home, sqlite_home
from recon_dagster_tests.scenario import API_KEY, new_scenario

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A reachable PostgreSQL URL, or the test is skipped (failed under RECON_REQUIRE_POSTGRES=1)."""
    url = os.environ.get("RECON_TEST_POSTGRES_URL", "").strip() or DEFAULT_POSTGRES_URL
    try:
        with psycopg.connect(url, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        message = f"PostgreSQL unreachable at {redact_url(url)}: {' '.join(str(exc).split())}"
        if os.environ.get("RECON_REQUIRE_POSTGRES", "").strip() == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@dataclass(frozen=True)
class PostgresSchema:
    """A schema of one's own; `url` has it as search_path, so unqualified names land in it."""

    name: str
    url: str


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[PostgresSchema]:
    """A fresh, uniquely named schema, dropped (CASCADE) after the test, so tests never collide."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield PostgresSchema(name=name, url=_with_search_path(postgres_url, name))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def _with_search_path(url: str, schema: str) -> str:
    """The URL with libpq `options=-csearch_path=<schema>` added to whatever options it had."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture
def serve():
    """Start local Stripe servers for a test (`serve(charges, **options)`) and stop them afterwards."""
    started: list[StripeServer] = []

    def start(charges=(), **options) -> StripeServer:
        started.append(StripeServer(charges, **options).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server():
    """An empty local Stripe server that accepts the scenario's key; tests add their charges."""
    with StripeServer([], api_key=API_KEY) as s:
        yield s


@pytest.fixture
def instance(tmp_path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """The default instance users run (see `sqlite_home`)."""
    with sqlite_home(tmp_path, monkeypatch) as i:
        yield i


@pytest.fixture(params=["sqlite", "postgres"])
def any_instance(request, tmp_path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """Each instance kind users run: the default SQLite DAGSTER_HOME and the PostgreSQL one."""
    if request.param == "sqlite":
        with sqlite_home(tmp_path, monkeypatch) as i:
            yield i
        return
    url = request.getfixturevalue("postgres_url")
    for database in fresh_database(url, "recon_instance_test"):
        with postgres_home(tmp_path, database, monkeypatch) as i:
            yield i


@pytest.fixture
def world(tmp_path, server):
    """A scenario (recon_dagster_tests/scenario.py) with its own payments table and this server."""
    return new_scenario(tmp_path, server)
