"""PostgreSQL everywhere: the report store and the assets' own tables, and the Dagster instance.

Each test gets a database of its own, so the assets' fixed schema `recon_assets` never collides
with another test's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import dagster as dg
import psycopg
import pytest

from recon_dagster.definitions import build_resources
from recon_dagster.stores.report_store import ReportStore
from recon_dagster_tests.support.instances import fresh_database, postgres_home
from recon_dagster_tests.support.scenario import at, new_scenario

D1, D2, D3 = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)


@pytest.fixture
def pg(postgres_url) -> Iterator[str]:
    """The URL of a fresh database, dropped after the test."""
    yield from fresh_database(postgres_url, "recon_io_test")


def rows(url: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def ids(url: str, table: str) -> list[str]:
    column = "id"
    return sorted(r[0] for r in rows(url, f"select {column} from recon_assets.{table}"))


def evaluations(result):
    return {e.partition: e for e in result.get_asset_check_evaluations()}


# -- the three assets on PostgreSQL --------------------------------------------------------------


def test_definitions_keep_asset_rows_in_postgres_when_the_report_store_is_postgres(
    world, pg, monkeypatch
):
    settings = world.use(monkeypatch, RECON_REPORT_STORE_URL=pg)
    tables = build_resources(settings)["asset_tables"]
    assert isinstance(tables.url, dg.EnvVar) and tables.asset_schema == "recon_assets"
    settings = world.use(monkeypatch)  # DuckDB report store: a DuckDB file beside it, as before
    url = build_resources(settings)["asset_tables"].url
    assert url == f"duckdb:///{world.root / 'assets.duckdb'}"


def test_one_day_on_postgres_stores_report_and_asset_rows(world, instance, pg, monkeypatch):
    world.sale("ch_a", 10_000, at(D1, 9))
    world.sale("ch_b", 5_000, at(D1, 15), record=False)
    world.sale("ch_other_day", 7_000, at(D2, 9))
    result = world.materialize(
        monkeypatch, D1.isoformat(), instance=instance, RECON_REPORT_STORE_URL=pg
    )
    assert result.success
    report = ReportStore(pg).latest(D1)
    assert (report.missing_in_database, report.stripe_total, report.database_total) == (
        ["ch_b"],
        15_000,
        10_000,
    )
    assert ids(pg, "stripe_charges") == ["ch_a", "ch_b"]
    assert ids(pg, "db_payments") == ["ch_a"]
    mat = instance.get_latest_materialization_event(
        dg.AssetKey("stripe_charges")
    ).asset_materialization
    assert mat.metadata["row_count"].value == 2
    assert not (world.root / "assets.duckdb").exists()


def test_three_day_range_on_postgres_checks_each_day(world, instance, pg, monkeypatch):
    world.sale("ch_1", 10_000, at(D1))
    world.sale("ch_2", 10_000, at(D2))
    world.sale("ch_2b", 300, at(D2), record=False)
    world.sale("ch_3", 10_000, at(D3))
    result = world.materialize(
        monkeypatch, D1.isoformat(), D3.isoformat(), instance=instance, RECON_REPORT_STORE_URL=pg
    )
    assert result.success
    checks = evaluations(result)
    assert {k: v.passed for k, v in checks.items()} == {
        D1.isoformat(): True,
        D2.isoformat(): False,
        D3.isoformat(): True,
    }
    store = ReportStore(pg)
    assert [store.latest(d).stripe_total for d in (D1, D2, D3)] == [10_000, 10_300, 10_000]
    assert ids(pg, "stripe_charges") == ["ch_1", "ch_2", "ch_2b", "ch_3"]
    assert ids(pg, "db_payments") == ["ch_1", "ch_2", "ch_3"]


def test_rematerializing_a_day_on_postgres_leaves_no_duplicates(world, instance, pg, monkeypatch):
    world.sale("ch_1", 10_000, at(D1))
    world.sale("ch_2", 10_000, at(D2))
    assert world.materialize(
        monkeypatch, D1.isoformat(), D2.isoformat(), instance=instance, RECON_REPORT_STORE_URL=pg
    ).success
    world.row("ch_late", 700, at(D1, 18))
    assert world.materialize(
        monkeypatch, D1.isoformat(), instance=instance, RECON_REPORT_STORE_URL=pg
    ).success
    assert ids(pg, "stripe_charges") == ["ch_1", "ch_2"]
    assert ids(pg, "db_payments") == ["ch_1", "ch_2", "ch_late"]
    assert ReportStore(pg).latest(D1).missing_in_stripe == ["ch_late"]
    # The assets hold each record once; the report keeps both versions, the latest current.
    assert rows(
        pg, "select version from reconciliation_reports where date = %s order by version", [D1]
    ) == [(1,), (2,)]


def test_empty_day_on_postgres_materializes_and_creates_the_tables(
    world, instance, pg, monkeypatch
):
    result = world.materialize(
        monkeypatch, D1.isoformat(), instance=instance, RECON_REPORT_STORE_URL=pg
    )
    assert result.success
    assert evaluations(result)[D1.isoformat()].passed
    assert ReportStore(pg).latest(D1).status == "success"
    assert ids(pg, "stripe_charges") == [] and ids(pg, "db_payments") == []
    types = dict(
        rows(
            pg,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'recon_assets' and table_name = 'stripe_charges'",
        )
    )
    assert types["id"] == "text" and types["amount"] == "bigint" and types["paid"] == "boolean"
    assert types["created"] == "timestamp with time zone"


def test_dst_day_in_new_york_on_postgres_covers_23_hours(
    tmp_path, server, instance, pg, monkeypatch
):
    world = new_scenario(tmp_path, server, tz="America/New_York")
    spring = date(2024, 3, 10)
    world.sale("ch_before", 500, at(date(2024, 3, 9), 23, 59, 59, tz="America/New_York"))
    world.sale("ch_first", 1_000, at(spring, 0, 0, 0, tz="America/New_York"))
    world.sale("ch_last", 2_000, at(spring, 23, 59, 50, tz="America/New_York"), record=False)
    world.sale("ch_next", 4_000, at(date(2024, 3, 11), 0, 0, 0, tz="America/New_York"))
    for day in ("2024-03-09", "2024-03-11"):
        assert world.materialize(
            monkeypatch, day, instance=instance, RECON_REPORT_STORE_URL=pg
        ).success
    assert world.materialize(
        monkeypatch, spring.isoformat(), instance=instance, RECON_REPORT_STORE_URL=pg
    ).success
    report = ReportStore(pg).latest(spring)
    assert (report.stripe_total, report.missing_in_database) == (3_000, ["ch_last"])
    # Re-materializing the DST day replaced exactly its 23 hours: the neighbours' rows are intact.
    assert world.materialize(
        monkeypatch, spring.isoformat(), instance=instance, RECON_REPORT_STORE_URL=pg
    ).success
    assert ids(pg, "stripe_charges") == ["ch_before", "ch_first", "ch_last", "ch_next"]


# -- the Dagster instance on PostgreSQL ----------------------------------------------------------


@pytest.fixture
def instance_database(postgres_url) -> Iterator[str]:
    yield from fresh_database(postgres_url, "recon_dagster_instance_test")


def test_postgres_instance_yaml_loads_and_runs_a_materialization(
    instance_database, tmp_path, monkeypatch
):
    @dg.asset
    def trivial() -> int:
        return 1

    with postgres_home(tmp_path, instance_database, monkeypatch) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 8
        result = dg.materialize([trivial], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("trivial")) is not None
    tables = {
        r[0]
        for r in rows(
            instance_database, "select tablename from pg_tables where schemaname = 'public'"
        )
    }
    assert {"runs", "event_logs", "jobs"} <= tables
