"""The report store's tables queried directly, outside the class under test."""

from __future__ import annotations

import duckdb
import psycopg

from recon_dagster.stores.report_store import ReportStore


def raw(store: ReportStore, sql: str) -> list[tuple]:
    """Query the store's tables directly (`{s}` = schema prefix), outside the class under test."""
    sql = sql.replace("{s}", f'"{store.schema}".' if store.schema else "")
    if store.path is not None:
        with duckdb.connect(str(store.path)) as conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(store.url) as conn:
        return conn.execute(sql).fetchall()


def run_raw(store: ReportStore, statements: list[tuple[str, tuple]]) -> None:
    """Execute statements (`?` placeholders) on the store's database in one transaction."""
    if store.path is not None:
        store.path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(store.path)) as conn:
            conn.execute("BEGIN TRANSACTION")
            for sql, params in statements:
                conn.execute(sql, list(params))
            conn.execute("COMMIT")
        return
    with psycopg.connect(store.url) as conn:
        for sql, params in statements:
            conn.execute(sql.replace("?", "%s"), params)
