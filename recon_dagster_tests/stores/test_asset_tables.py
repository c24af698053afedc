"""The assets' own tables (`stores.asset_tables`), on a DuckDB file and on PostgreSQL: every type
round-trips, a slice reads and replaces only its rows, and a failed write keeps what was there."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal

import duckdb
import polars as pl
import psycopg
import pytest

from recon_dagster.stores.asset_slice import AssetTablesError, Slice
from recon_dagster.stores.asset_tables import AssetTables
from recon_dagster_tests.support.instances import fresh_database

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
DAY = Slice("t", datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))
NEXT_DAY = Slice("t", datetime(2024, 1, 3, tzinfo=UTC), datetime(2024, 1, 4, tzinfo=UTC))


@pytest.fixture(params=["duckdb", "duckdb_large_slices", "postgresql"])
def tables(request, tmp_path) -> Iterator[AssetTables]:
    """The asset tables on each database they may live in. On DuckDB, small slices use the file
    attached to the process's in-memory database and large ones open it on its own:
    `duckdb_large_slices` counts every slice as large."""
    if request.param.startswith("duckdb"):
        large = request.param == "duckdb_large_slices"
        url = f"duckdb:///{tmp_path / 'assets.duckdb'}"
        yield AssetTables(url, "recon_assets", shared_rows=0 if large else 100_000)
        return
    url = request.getfixturevalue("postgres_url")
    for database in fresh_database(url, "recon_asset_tables_test"):
        yield AssetTables(database, "recon_assets")


def count(tables: AssetTables, where: str = "true") -> int:
    query = f"select count(*) from recon_assets.sample where {where}"
    if tables.on_postgres:
        with psycopg.connect(tables.url) as conn:
            found = conn.execute(query).fetchone()
    else:
        with duckdb.connect(tables.url.removeprefix("duckdb:///")) as conn:
            found = conn.execute(query).fetchone()
    assert found is not None
    return found[0]


def test_every_type_and_null_and_empty_string_round_trips(tables):
    tables.write("sample", SAMPLE, DAY)
    back = tables.read("sample", DAY)
    assert back.schema == SAMPLE.schema
    assert back.sort("i32", nulls_last=True).equals(SAMPLE.sort("i32", nulls_last=True))
    assert back["s"].to_list().count("") == 1 and back["s"].null_count() == 1


def test_a_slice_reads_only_its_rows(tables):
    tables.write("sample", SAMPLE.with_columns(pl.col("t") + pl.duration(days=1)), NEXT_DAY)
    tables.write("sample", SAMPLE, DAY)
    assert tables.read("sample", DAY).height == 4 and count(tables) == 8


def test_writing_a_slice_again_replaces_its_rows_and_keeps_the_others(tables):
    tables.write("sample", SAMPLE.with_columns(pl.col("t") + pl.duration(days=1)), NEXT_DAY)
    tables.write("sample", SAMPLE, DAY)
    tables.write("sample", SAMPLE.head(1), DAY)
    assert tables.read("sample", DAY).height == 1 and count(tables) == 5


def test_an_empty_frame_creates_the_table_and_reads_back_with_its_schema(tables):
    tables.write("sample", SAMPLE.clear(), DAY)
    back = tables.read("sample", DAY)
    assert back.height == 0 and back.schema == SAMPLE.schema


def test_a_column_empty_in_its_slice_reads_back_as_typed_nulls_and_filled_elsewhere(tables):
    empty = ["i", "f", "b", "d", "tm", "dec", "tz_null"]
    day = SAMPLE.with_columns(pl.lit(None, SAMPLE.schema[name]).alias(name) for name in empty)
    next_day = SAMPLE.with_columns(pl.col("t") + pl.duration(days=1))
    tables.write("sample", day, DAY)
    tables.write("sample", next_day, NEXT_DAY)
    back, back_next = tables.read("sample", DAY), tables.read("sample", NEXT_DAY)
    assert back.schema == SAMPLE.schema and back_next.schema == SAMPLE.schema
    assert back.sort("i32", nulls_last=True).equals(day.sort("i32", nulls_last=True))
    assert back_next.sort("i32", nulls_last=True).equals(next_day.sort("i32", nulls_last=True))


def test_a_skipped_column_reads_back_as_typed_nulls_and_stays_in_the_table(tables):
    tables.write("sample", SAMPLE, DAY)
    back = tables.read("sample", DAY, skip=("s", "dec"))
    assert back.schema == SAMPLE.schema
    assert back["s"].null_count() == back["dec"].null_count() == 4
    assert back.drop("s", "dec").sort("i32").equals(SAMPLE.drop("s", "dec").sort("i32"))
    assert tables.read("sample", DAY)["s"].null_count() == 1


def test_a_failed_write_keeps_the_previous_rows(tables):
    tables.write("sample", SAMPLE, DAY)
    broken = SAMPLE.with_columns(i=pl.Series(["not a number"] * 4))  # a text `i` cannot go in
    with pytest.raises(Exception):  # noqa: B017 - each database's own error
        tables.write("sample", broken, DAY)
    assert count(tables) == 4  # the delete was rolled back with the insert


def test_a_table_written_by_an_older_version_gains_the_new_columns(tables):
    tables.write("sample", SAMPLE.drop("b"), DAY)  # an older frame, without `b`
    tables.write("sample", SAMPLE.with_columns(pl.col("t") + pl.duration(days=1)), NEXT_DAY)
    back = tables.read("sample", NEXT_DAY)
    assert back.get_column("b").to_list() == SAMPLE.get_column("b").to_list()
    assert count(tables, "b is null") == 5  # 4 old rows + 1 null


def test_a_table_never_written_is_named(tables):
    with pytest.raises(AssetTablesError, match="sample"):
        tables.read("sample", DAY)


def test_connection_errors_never_show_the_password():
    tables = AssetTables("postgresql://recon:s3cr3t-pw@127.0.0.1:1/recon")
    with pytest.raises(AssetTablesError) as raised:
        tables.write("sample", SAMPLE, DAY)
    assert "s3cr3t-pw" not in str(raised.value) and "recon:***@127.0.0.1:1" in str(raised.value)
