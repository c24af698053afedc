"""PostgreSQL everywhere: the report store and the assets' own storage, and the Dagster instance.

Each test gets a database of its own, so the assets' fixed schema `recon_assets` never collides
with another test's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal

import dagster as dg
import polars as pl
import psycopg
import pytest

from recon_dagster.definitions import build_resources
from recon_dagster.stores.postgres_io import PostgresIOError, PostgresPolarsIOManager
from recon_dagster.stores.report_store import ReportStore
from recon_dagster_tests.instances import fresh_database, postgres_home
from recon_dagster_tests.scenario import at, new_scenario

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


def test_definitions_pick_postgres_for_assets_when_the_report_store_is_postgres(
    world, pg, monkeypatch
):
    settings = world.use(monkeypatch, RECON_REPORT_STORE_URL=pg)
    manager = build_resources(settings)["io_manager"]
    assert isinstance(manager, PostgresPolarsIOManager)
    assert isinstance(manager.url, dg.EnvVar) and manager.schema_ == "recon_assets"
    settings = world.use(monkeypatch)  # DuckDB report store: DuckDB assets, as before
    assert not isinstance(build_resources(settings)["io_manager"], PostgresPolarsIOManager)


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


# -- the IO manager on its own -------------------------------------------------------------------

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01")
SAMPLE = pl.DataFrame(
    {
        "s": ["a", "", None, 'x,"y"\nz'],
        "i": [1, None, -(2**62), 0],
        "i32": pl.Series([1, 2, None, 4], dtype=pl.Int32),
        "f": [1.5, None, float("inf"), -0.25],
        "b": [True, None, False, True],
        "t": pl.Series(
            [
                datetime(2024, 1, 2, 0, 0, 0, 1, tzinfo=UTC),
                datetime(2024, 1, 2, 0, 0, tzinfo=UTC),
                datetime(2024, 1, 2, 23, 59, 59, 999999, tzinfo=UTC),
                datetime(2024, 1, 2, 12, tzinfo=UTC),
            ],
            dtype=pl.Datetime("us", "UTC"),
        ),
        "naive": [datetime(2024, 1, 2, 3), None, datetime(2024, 1, 2, 4), datetime(2024, 1, 2, 5)],
        "d": [date(2024, 1, 2), None, date(1999, 12, 31), date(2024, 2, 29)],
        "tm": [time(1, 2, 3), None, time(23, 59, 59, 5), time(0)],
        "dec": pl.Series(
            [Decimal("1.25"), None, Decimal("-3.50"), Decimal(0)], dtype=pl.Decimal(12, 2)
        ),
        "nothing": pl.Series([None, None, None, None], dtype=pl.String),
        "tz_null": pl.Series(
            [None, datetime(2024, 1, 1, tzinfo=UTC), None, None], dtype=pl.Datetime("us", "UTC")
        ),
    }
).with_columns(pl.col("naive").cast(pl.Datetime("us")))


def _round_trip(
    frame: pl.DataFrame, url: str, schema: str, partition: str = "2024-01-02"
) -> pl.DataFrame:
    seen: dict[str, pl.DataFrame] = {}

    @dg.asset(partitions_def=DAYS, metadata={"partition_expr": "timezone('UTC', t)"})
    def sample() -> pl.DataFrame:
        return frame

    @dg.asset(partitions_def=DAYS)
    def reader(sample: pl.DataFrame) -> None:
        seen["frame"] = sample

    result = dg.materialize(
        [sample, reader],
        partition_key=partition,
        resources={"io_manager": PostgresPolarsIOManager(url=url, schema=schema)},
    )
    assert result.success
    return seen["frame"]


def test_dtypes_nulls_and_empty_strings_round_trip(pg):
    back = _round_trip(SAMPLE, pg, "io_types")
    assert back.schema == SAMPLE.schema
    assert back.sort("i32", nulls_last=True).equals(SAMPLE.sort("i32", nulls_last=True))
    assert back["s"].to_list().count("") == 1 and back["s"].null_count() == 1


def test_only_the_partitions_rows_are_loaded(pg):
    other_day = SAMPLE.with_columns(pl.col("t") + pl.duration(days=1))
    _round_trip(other_day, pg, "io_slices", partition="2024-01-03")
    back = _round_trip(SAMPLE, pg, "io_slices")
    assert back.height == 4 and rows(pg, "select count(*) from io_slices.sample") == [(8,)]


def test_empty_frame_creates_the_table_and_loads_back_with_its_schema(pg):
    back = _round_trip(SAMPLE.clear(), pg, "io_empty")
    assert back.height == 0 and back.schema == SAMPLE.schema
    assert rows(pg, "select count(*) from io_empty.sample") == [(0,)]


def test_a_failed_write_keeps_the_previous_rows(pg):
    _round_trip(SAMPLE, pg, "io_atomic")
    broken = SAMPLE.with_columns(s=pl.Series([["x"]] * 4))  # a list column has no column type here

    @dg.asset(partitions_def=DAYS, metadata={"partition_expr": "timezone('UTC', t)"})
    def sample() -> pl.DataFrame:
        return broken

    result = dg.materialize(
        [sample],
        partition_key="2024-01-02",
        raise_on_error=False,
        resources={"io_manager": PostgresPolarsIOManager(url=pg, schema="io_atomic")},
    )
    assert not result.success
    assert rows(pg, "select count(*) from io_atomic.sample") == [(4,)]  # the delete was rolled back


def test_connection_errors_never_show_the_password():
    @dg.asset
    def sample() -> pl.DataFrame:
        return SAMPLE

    url = "postgresql://recon:s3cr3t-pw@127.0.0.1:1/recon"
    with pytest.raises(PostgresIOError) as raised:
        dg.materialize([sample], resources={"io_manager": PostgresPolarsIOManager(url=url)})
    assert "s3cr3t-pw" not in str(raised.value) and "recon:***@127.0.0.1:1" in str(raised.value)


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


def test_a_table_written_by_an_older_version_gains_the_new_columns(pg):
    _round_trip(
        SAMPLE.drop("b"), pg, "io_evolve", partition="2024-01-02"
    )  # an older frame, without `b`
    back = _round_trip(
        SAMPLE.with_columns(pl.col("t") + pl.duration(days=1)),
        pg,
        "io_evolve",
        partition="2024-01-03",
    )
    assert back.get_column("b").to_list() == SAMPLE.get_column("b").to_list()
    assert rows(pg, "select count(*) from io_evolve.sample where b is null") == [
        (5,)
    ]  # 4 old rows + 1 null
