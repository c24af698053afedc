"""The report store on each database it may live in: a DuckDB file and a PostgreSQL schema of
the test's own."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from recon_dagster.stores.report_store import ReportStore


@pytest.fixture
def store_pg_schema(postgres_url):
    """A schema name no other test uses; dropped with everything in it afterwards."""
    schema = f"recon_test_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["duckdb", "postgres"])
def store(request, tmp_path) -> ReportStore:
    if request.param == "duckdb":
        return ReportStore(f"duckdb:///{tmp_path}/nested/recon.duckdb")
    return ReportStore(
        request.getfixturevalue("postgres_url"), schema=request.getfixturevalue("store_pg_schema")
    )
