"""Shared fixtures.

PostgreSQL: tests use `RECON_TEST_POSTGRES_URL` (default: local trust auth) and are skipped when it
is unreachable, unless `RECON_REQUIRE_POSTGRES=1`, in which case they fail. MySQL/MariaDB likewise:
`RECON_TEST_MYSQL_URL` (default: root without a password on 127.0.0.1:3306) and
`RECON_REQUIRE_MYSQL=1`.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dagster as dg
import psycopg
import pymysql
import pytest
from psycopg import sql

from recon_dagster.settings import redact_url
from recon_dagster.testing.stripe_server import StripeServer
from recon_dagster_tests.support.databases import mysql_connect
from recon_dagster_tests.support.instances import (
    fresh_database,
    initialized_postgres_database,
    initialized_sqlite_home,
    postgres_home,
    sqlite_home,
)
from recon_dagster_tests.support.scenario import API_KEY, new_scenario

# The suite starts ~170 Python processes that import the code location (CLI calls, `dagster`
# commands, code servers, daemons, forked steps) and five xdist workers that import every test
# module. Where PYTHONDONTWRITEBYTECODE is set, none of them may write a bytecode cache, so each
# compiles our ~38,000 lines again and every worker rewrites every test module: collecting the
# suite took ~11 s of CPU per worker without caches, ~5 s with. The suite writes them, into the
# git-ignored `__pycache__` folders, as a Python run does by default. Set here, in the controller
# that loads this file before it starts the workers: they and every process they start inherit it.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    sys.dont_write_bytecode = False

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/test"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make `--dist loadgroup` group again on pytest 9.2.

    pytest-xdist marks a test of an `xdist_group` by appending `@group` to its node id on the
    worker (`item._nodeid`), which is what its scheduler groups by; pytest 9.2 builds `nodeid`
    from a structured id and no longer reads that field, so every group was silently spread over
    the workers, and each worker built the group's module fixture again (the demo three times).
    pytest-xdist#1386, fix pending in #1388; this hook does nothing once ids carry the suffix.
    """
    from _pytest.nodeid import NodeId  # private: the one way to set a pytest 9.2 node id

    for item in items:
        legacy = getattr(item, "_nodeid", None)
        if isinstance(legacy, str) and "@" in legacy and legacy != item.nodeid:
            item._id = NodeId.parse(legacy)  # noqa: SLF001 (no public setter: see above)


def reachable(
    name: str, url_variable: str, default: str, require_variable: str, connect, errors
) -> str:
    """The server's test URL when `connect(url)` works; else skip the test, or fail it when
    `require_variable` is 1 (as CI sets it)."""
    url = os.environ.get(url_variable, "").strip() or default
    try:
        connect(url)
    except errors as exc:
        message = f"{name} unreachable at {redact_url(url)}: {' '.join(str(exc).split())}"
        if os.environ.get(require_variable, "").strip() == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A reachable PostgreSQL URL, or the test is skipped (failed under
    RECON_REQUIRE_POSTGRES=1)."""
    return reachable(
        "PostgreSQL",
        "RECON_TEST_POSTGRES_URL",
        DEFAULT_POSTGRES_URL,
        "RECON_REQUIRE_POSTGRES",
        lambda url: psycopg.connect(url, connect_timeout=3).close(),
        psycopg.Error,
    )


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """A reachable MySQL/MariaDB URL, or the test is skipped (failed under
    RECON_REQUIRE_MYSQL=1)."""
    return reachable(
        "MySQL/MariaDB",
        "RECON_TEST_MYSQL_URL",
        DEFAULT_MYSQL_URL,
        "RECON_REQUIRE_MYSQL",
        lambda url: mysql_connect(url).close(),
        pymysql.MySQLError,
    )


@dataclass(frozen=True)
class MysqlDatabase:
    """A fresh database of one's own (and `other`, a second one for database.table names)."""

    name: str
    other: str
    url: str


@pytest.fixture
def mysql_database(mysql_url: str) -> Iterator[MysqlDatabase]:
    """Two uniquely named databases, dropped after the test, so tests never collide."""
    name = f"recon_test_{uuid.uuid4().hex[:12]}"
    with mysql_connect(mysql_url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
        cur.execute(f"CREATE DATABASE {name}_b")
    try:
        yield MysqlDatabase(
            name=name,
            other=f"{name}_b",
            url=urlunsplit(urlsplit(mysql_url)._replace(path=f"/{name}")),
        )
    finally:
        with mysql_connect(mysql_url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
            cur.execute(f"DROP DATABASE IF EXISTS {name}_b")


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
    """Start local Stripe servers for a test (`serve(charges, **options)`) and stop them
    afterwards."""
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


@pytest.fixture(scope="session")
def initialized_home(tmp_path_factory) -> Path:
    """A SQLite DAGSTER_HOME Dagster has initialized, which each test's instance starts from."""
    return initialized_sqlite_home(tmp_path_factory.mktemp("initialized"))


@pytest.fixture
def instance(tmp_path, monkeypatch, initialized_home) -> Iterator[dg.DagsterInstance]:
    """The default instance users run (see `sqlite_home`)."""
    with sqlite_home(tmp_path, monkeypatch, initialized_home) as i:
        yield i


@pytest.fixture(params=["sqlite", "postgres"])
def any_instance(request, tmp_path, monkeypatch) -> Iterator[dg.DagsterInstance]:
    """Each instance kind users run: the default SQLite DAGSTER_HOME and the PostgreSQL one."""
    if request.param == "sqlite":
        home = request.getfixturevalue("initialized_home")
        with sqlite_home(tmp_path, monkeypatch, home) as i:
            yield i
        return
    url = request.getfixturevalue("postgres_url")
    template = request.getfixturevalue("initialized_postgres")
    for database in fresh_database(url, "recon_instance_test", template):
        with postgres_home(tmp_path, database, monkeypatch) as i:
            yield i


@pytest.fixture(scope="session")
def initialized_postgres(postgres_url, tmp_path_factory) -> Iterator[str]:
    """A database holding initialized Dagster storage, which each PostgreSQL instance copies."""
    yield from initialized_postgres_database(postgres_url, tmp_path_factory.mktemp("initialized"))


@pytest.fixture
def world(tmp_path, server):
    """A scenario (recon_dagster_tests/scenario.py) with its own payments table and this server."""
    return new_scenario(tmp_path, server)
