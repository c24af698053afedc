"""The payments table on real DuckDB and SQLite files, real PostgreSQL and real MariaDB: reading,
validating, inserting. Each test runs on all four unless it says why not."""

from __future__ import annotations

import logging
import re
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import psycopg
import pytest
from hypothesis import given, settings, strategies as st

from recon_dagster.core.frames import PAYMENTS_SCHEMA
from recon_dagster.money import to_major
from recon_dagster.settings import ConfigError, PaymentsTable, Settings
from recon_dagster.sources.payments_db import (
    BRIEF_ROWS,
    InsertResult,
    NewPayment,
    PaymentsDataError,
    find_ids,
    insert_payment,
    normalise,
    read_window,
    validate,
)
from recon_dagster.sources.payments_db.mysql import SharedTlsConnection, connect as mysql_connect_to
from recon_dagster_tests.support.databases import mysql_connect

DAY = datetime(2024, 5, 1, tzinfo=UTC)
NEXT_DAY = DAY + timedelta(days=1)
DEFAULT_TABLE = (
    "CREATE TABLE payments (stripe_charge_id TEXT, amount BIGINT, currency TEXT, status TEXT, "
    "created_at TIMESTAMPTZ)"
)


@dataclass
class Store:
    """One database under test; `schema` is where schema-qualified tables go (a second database on
    MySQL, `main` on SQLite)."""

    kind: str
    url: str
    schema: str

    def run(self, statement: str, *rows: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run one statement (PostgreSQL-flavoured SQL with `?` placeholders) once, or once per row;
        return the last result."""
        if self.kind == "duckdb":
            with duckdb.connect(self.url.removeprefix("duckdb:///")) as con:
                for row in rows or [()]:
                    con.execute(statement, list(row))
                return con.fetchall() if con.description else []
        if self.kind == "sqlite":
            with closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as con, con:
                cur = con.cursor()
                for row in rows or [()]:
                    cur.execute(statement, [_sqlite_value(v) for v in row])
                return cur.fetchall() if cur.description else []
        if self.kind == "mysql":
            return self._run_mysql(statement, rows)
        with psycopg.connect(self.url, autocommit=True) as conn:
            result: list[tuple[Any, ...]] = []
            for row in rows or [()]:
                cur = conn.execute(statement.replace("?", "%s"), list(row))
                result = cur.fetchall() if cur.description else []
            return result

    def _run_mysql(
        self, statement: str, rows: tuple[tuple[Any, ...], ...]
    ) -> list[tuple[Any, ...]]:
        # MySQL spellings: TIMESTAMPTZ (an instant) is TIMESTAMP, a bare TIMESTAMP (wall time) is
        # DATETIME.
        statement = re.sub(r"\bTIMESTAMP\b(?!\()", "DATETIME(6)", statement)
        statement = re.sub(r"\bTIMESTAMPTZ\b", "TIMESTAMP(6) NULL", statement).replace("?", "%s")
        with mysql_connect(self.url, self.url.rsplit("/", 1)[1]) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
            result: list[tuple[Any, ...]] = []
            for row in rows or [()]:
                cur.execute(statement, [_utc_naive(v) for v in row])
                result = list(cur.fetchall()) if cur.description else []
            return result

    def mapping(self, **env: str) -> PaymentsTable:
        """The table as the application would configure it, through Settings."""
        return Settings.from_env({"RECON_DATABASE_URL": self.url, **env}).payments


def _utc_naive(value: Any) -> Any:
    """Aware datetimes as UTC wall times (the session's zone), naive ones as they are."""
    return (
        value.astimezone(UTC).replace(tzinfo=None)
        if isinstance(value, datetime) and value.tzinfo
        else value
    )


def _sqlite_value(value: Any) -> Any:
    """What an application's ORM writes to SQLite: ISO text for times, text for decimals."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value) if isinstance(value, Decimal) else value


@pytest.fixture(params=["duckdb", "postgres", "mysql", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "duckdb":
        path = tmp_path / "app.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE SCHEMA billing")
        return Store("duckdb", f"duckdb:///{path}", "billing")
    if request.param == "sqlite":
        path = tmp_path / "app.db"
        sqlite3.connect(path).close()
        return Store("sqlite", f"sqlite:///{path}", "main")
    if request.param == "mysql":
        database = request.getfixturevalue("mysql_database")
        return Store("mysql", database.url, database.other)
    schema = request.getfixturevalue("postgres_schema")
    return Store("postgres", schema.url, schema.name)


@pytest.fixture
def payments(store: Store) -> PaymentsTable:
    """The default mapping over an empty default-named table (minor units)."""
    store.run(DEFAULT_TABLE)
    return store.mapping()


def add(store: Store, *rows: tuple[Any, ...]) -> None:
    store.run("INSERT INTO payments VALUES (?, ?, ?, ?, ?)", *rows)


def custom(store: Store) -> PaymentsTable:
    """billing.orders-style table: other names, major units, a refunded column."""
    store.run(
        f"CREATE TABLE {store.schema}.orders (charge_ref TEXT, total_major NUMERIC(12,3), cur "
        "TEXT, "
        "state TEXT, placed_at TIMESTAMPTZ, refunded_major NUMERIC(12,3))"
    )
    return store.mapping(
        RECON_PAYMENTS_TABLE=f"{store.schema}.orders",
        RECON_PAYMENTS_ID_COLUMN="charge_ref",
        RECON_PAYMENTS_AMOUNT_COLUMN="total_major",
        RECON_PAYMENTS_AMOUNT_UNIT="major",
        RECON_PAYMENTS_CURRENCY_COLUMN="cur",
        RECON_PAYMENTS_STATUS_COLUMN="state",
        RECON_PAYMENTS_CREATED_AT_COLUMN="placed_at",
        RECON_PAYMENTS_REFUNDED_COLUMN="refunded_major",
    )


def at(hour: int, minute: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute)


# --- reading ---------------------------------------------------------------------------------


def test_default_table_in_minor_units_reads_as_payments_frame(
    store: Store, payments: PaymentsTable
) -> None:
    add(store, ("ch_1", 1999, "usd", "succeeded", at(10)), ("ch_2", 500, "EUR", "failed", at(11)))

    frame = read_window(payments, DAY, NEXT_DAY).sort("id")

    assert frame.schema == pl.Schema(PAYMENTS_SCHEMA)
    assert frame.to_dicts() == [
        {
            "id": "ch_1",
            "amount": 1999,
            "currency": "USD",
            "status": "succeeded",
            "created_at": at(10),
            "refunded": None,
            "invalid_column": None,
            "invalid_reason": None,
        },
        {
            "id": "ch_2",
            "amount": 500,
            "currency": "EUR",
            "status": "failed",
            "created_at": at(11),
            "refunded": None,
            "invalid_column": None,
            "invalid_reason": None,
        },
    ]


def test_custom_names_in_major_units_convert_exactly_per_currency(store: Store) -> None:
    orders = custom(store)
    store.run(
        f"INSERT INTO {store.schema}.orders VALUES (?, ?, ?, ?, ?, ?)",
        ("ch_usd", Decimal("19.99"), "usd", "paid", at(1), Decimal("5.00")),
        ("ch_jpy", Decimal("1500"), "JPY", "paid", at(2), Decimal("0")),
        ("ch_kwd", Decimal("1.234"), "KWD", "paid", at(3), None),
    )

    frame = read_window(orders, DAY, NEXT_DAY).sort("id")

    assert frame.select("id", "amount", "currency", "refunded").rows() == [
        ("ch_jpy", 1500, "JPY", 0),
        ("ch_kwd", 1234, "KWD", 0),  # NULL refunded is read as nothing refunded
        ("ch_usd", 1999, "USD", 500),
    ]


def test_float_amount_column_is_read_through_its_exact_decimal_text(store: Store) -> None:
    store.run(
        "CREATE TABLE payments (stripe_charge_id TEXT, amount DOUBLE PRECISION, currency TEXT, "
        "status TEXT, created_at TIMESTAMPTZ)"
    )
    add(store, ("ch_1", 0.29, "USD", "paid", at(1)), ("ch_2", 1e16, "JPY", "paid", at(2)))

    frame = read_window(store.mapping(RECON_PAYMENTS_AMOUNT_UNIT="major"), DAY, NEXT_DAY).sort("id")

    # 0.29 * 100 is 28.999999999999996 in floats; 1e16 is printed in exponent notation.
    assert frame["amount"].to_list() == [29, 10**16]


def test_empty_window_reads_as_an_empty_payments_frame(
    store: Store, payments: PaymentsTable
) -> None:
    add(store, ("ch_1", 1, "USD", "paid", NEXT_DAY))

    frame = read_window(payments, DAY, NEXT_DAY)

    assert frame.is_empty() and frame.schema == pl.Schema(PAYMENTS_SCHEMA)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-(10**16), max_value=10**16),
            st.sampled_from(["USD", "JPY", "KWD", "ISK", "CLF"]),
            st.integers(min_value=0, max_value=3),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_major_text_amounts_read_back_as_the_exact_minor_units(
    amounts: list[tuple[int, str, int]],
) -> None:
    def text(minor: int, code: str, trailing_zeros: int) -> str:
        plain = format(to_major(minor, code), "f")
        return plain + ("" if "." in plain or not trailing_zeros else ".") + "0" * trailing_zeros

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "app.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute(
                "CREATE TABLE payments (stripe_charge_id TEXT, amount TEXT, currency TEXT, status "
                "TEXT, created_at TIMESTAMPTZ)"
            )
            con.executemany(
                "INSERT INTO payments VALUES (?, ?, ?, 'paid', ?)",
                [(f"ch_{i}", text(*amount), amount[1], DAY) for i, amount in enumerate(amounts)],
            )
        table = Settings.from_env(
            {"RECON_DATABASE_URL": f"duckdb:///{path}", "RECON_PAYMENTS_AMOUNT_UNIT": "major"}
        ).payments

        frame = read_window(table, DAY, NEXT_DAY)

    assert dict(frame.select("id", "amount").rows()) == {
        f"ch_{i}": minor for i, (minor, _, _) in enumerate(amounts)
    }


def test_window_includes_exactly_start_and_excludes_exactly_end_on_a_23_hour_dst_day(
    store: Store, payments: PaymentsTable
) -> None:
    new_york = ZoneInfo("America/New_York")
    start = datetime(2024, 3, 10, tzinfo=new_york)
    end = datetime(2024, 3, 11, tzinfo=new_york)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)
    add(
        store,
        ("before", 1, "USD", "paid", start - timedelta(microseconds=1)),
        ("at_start", 1, "USD", "paid", start),
        ("last", 1, "USD", "paid", end.astimezone(UTC) - timedelta(microseconds=1)),
        ("at_end", 1, "USD", "paid", end),
    )

    frame = read_window(payments, start, end)

    assert sorted(frame["id"]) == ["at_start", "last"]
    assert frame.filter(pl.col("id") == "at_start")["created_at"].item() == datetime(
        2024, 3, 10, 5, tzinfo=UTC
    )


def test_naive_created_at_column_is_taken_as_utc(store: Store) -> None:
    store.run(
        "CREATE TABLE payments (stripe_charge_id TEXT, amount BIGINT, currency TEXT, status TEXT, "
        "created_at TIMESTAMP)"
    )
    add(
        store,
        ("late", 1, "USD", "paid", datetime(2024, 5, 1, 23, 30)),
        ("next", 1, "USD", "paid", datetime(2024, 5, 2)),
    )
    payments = store.mapping()

    frame = read_window(payments, DAY, NEXT_DAY)

    assert validate(payments).created_at_has_timezone is False
    assert frame.rows() == [("late", 1, "USD", "paid", at(23, 30), None, None, None)]


def test_reserved_and_mixed_case_names_are_quoted(store: Store) -> None:
    store.run(
        'CREATE TABLE "order" ("user" TEXT, "Select" BIGINT, "from" TEXT, "where" TEXT, "Group" '
        "TIMESTAMPTZ)"
    )
    store.run('INSERT INTO "order" VALUES (?, ?, ?, ?, ?)', ("ch_1", 7, "usd", "paid", at(1)))
    table = store.mapping(
        RECON_PAYMENTS_TABLE="order",
        RECON_PAYMENTS_ID_COLUMN="user",
        RECON_PAYMENTS_AMOUNT_COLUMN="Select",
        RECON_PAYMENTS_CURRENCY_COLUMN="from",
        RECON_PAYMENTS_STATUS_COLUMN="where",
        RECON_PAYMENTS_CREATED_AT_COLUMN="Group",
    )

    assert read_window(table, DAY, NEXT_DAY)["amount"].to_list() == [7]


def test_validate_reports_the_column_types(store: Store) -> None:
    info = validate(custom(store))

    assert info.table.endswith(".orders")
    # SQLite keeps a NUMERIC value with a fraction as REAL, and a time as text in any form.
    expected = ("float", "float", False) if store.kind == "sqlite" else ("decimal", "decimal", True)
    assert (info.amount_kind, info.refunded_kind, info.created_at_has_timezone) == expected
    assert list(info.columns) == [
        "charge_ref",
        "total_major",
        "cur",
        "state",
        "placed_at",
        "refunded_major",
    ]


# --- clear errors ----------------------------------------------------------------------------


def test_missing_table_names_the_variable_and_the_table(store: Store) -> None:
    with pytest.raises(
        ConfigError, match=r"^RECON_PAYMENTS_TABLE: table payments not found"
    ) as caught:
        validate(store.mapping())
    assert caught.value.variable == "RECON_PAYMENTS_TABLE"


def test_missing_column_names_the_variable_and_lists_the_columns(
    store: Store, payments: PaymentsTable
) -> None:
    table = store.mapping(RECON_PAYMENTS_AMOUNT_COLUMN="amt")

    with pytest.raises(
        ConfigError,
        match=r"^RECON_PAYMENTS_AMOUNT_COLUMN: column 'amt' not found in table \w+\.payments "
        r"\(columns: stripe_charge_id, amount,",
    ):
        read_window(table, DAY, NEXT_DAY)


def invalid(frame: pl.DataFrame) -> list[tuple]:
    return (
        frame.filter(pl.col("invalid_reason").is_not_null())
        .select("id", "invalid_column", "invalid_reason")
        .rows()
    )


def test_null_amount_marks_the_row_invalid_and_keeps_the_others(
    store: Store, payments: PaymentsTable
) -> None:
    add(store, ("ch_ok", 1, "USD", "paid", at(1)), ("ch_9", None, "USD", "paid", at(2)))

    frame = read_window(payments, DAY, NEXT_DAY)

    assert invalid(frame) == [("ch_9", "amount", "NULL in amount column 'amount'")]
    assert frame.filter(pl.col("id") == "ch_ok")["amount"].to_list() == [1]


def test_amount_that_is_not_whole_minor_units_marks_the_row_invalid(store: Store) -> None:
    if store.kind == "sqlite":
        pytest.skip(
            "SQLite's NUMERIC is binary floating point: rounded, see "
            "test_sqlite_decimal_column_is_rounded_like_a_float"
        )
    orders = custom(store)
    store.run(
        f"INSERT INTO {store.schema}.orders VALUES (?, ?, ?, ?, ?, ?)",
        ("ch_x", Decimal("10.005"), "USD", "paid", at(1), None),
    )

    assert invalid(read_window(orders, DAY, NEXT_DAY)) == [
        (
            "ch_x",
            "total_major",
            "'10.005' in amount column 'total_major' is not a whole number of minor units of USD "
            "(2 decimals)",
        )
    ]


@pytest.mark.parametrize("code", ["US", "xyz"])
def test_a_currency_that_is_not_iso_4217_marks_the_row_invalid(
    store: Store, payments: PaymentsTable, code: str
) -> None:
    add(store, ("ch_1", 1, code, "paid", at(1)))

    assert invalid(read_window(payments, DAY, NEXT_DAY)) == [
        (
            "ch_1",
            "currency",
            f"{code.upper()} in currency column 'currency' is not an ISO 4217 currency code",
        )
    ]


def test_null_id_and_null_currency_are_named(store: Store, payments: PaymentsTable) -> None:
    add(store, (None, 5, "USD", "paid", at(1)), ("ch_2", 5, None, "paid", at(2)))

    assert set(invalid(read_window(payments, DAY, NEXT_DAY))) == {
        (None, "stripe_charge_id", "NULL in id column 'stripe_charge_id'"),
        ("ch_2", "currency", "NULL in currency column 'currency'"),
    }


def test_unreachable_postgres_error_redacts_the_password() -> None:
    table = Settings.from_env(
        {"RECON_DATABASE_URL": "postgresql://app:s3cret-pw@127.0.0.1:1/shop"}
    ).payments

    with pytest.raises(ConfigError) as caught:
        validate(table)

    assert str(caught.value).startswith(
        "RECON_DATABASE_URL: cannot connect to postgresql://app:***@127.0.0.1:1/shop ("
    )
    assert "s3cret-pw" not in str(caught.value)


def test_missing_duckdb_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.duckdb"
    table = Settings.from_env({"RECON_DATABASE_URL": f"duckdb:///{path}"}).payments

    with pytest.raises(
        ConfigError,
        match=r"^RECON_DATABASE_URL: cannot open duckdb:///.*absent\.duckdb "
        r"\(no such DuckDB file\)",
    ):
        validate(table)
    assert not path.exists()


# --- find_ids --------------------------------------------------------------------------------


def test_find_ids_returns_the_asked_rows_anywhere_in_the_table(
    store: Store, payments: PaymentsTable
) -> None:
    add(
        store,
        ("ch_1", 1, "USD", "paid", at(1)),
        ("ch_2", 2, "USD", "paid", at(2) - timedelta(days=30)),
        ("ch_3", 3, "USD", "paid", at(3)),
    )

    frame = find_ids(payments, ["ch_2", "ch_3", "ch_missing"] + [f"other_{i}" for i in range(3000)])

    assert frame.schema == pl.Schema(PAYMENTS_SCHEMA)
    assert sorted(frame["id"]) == ["ch_2", "ch_3"]


def test_find_ids_within_a_window_skips_rows_outside_it(
    store: Store, payments: PaymentsTable
) -> None:
    add(
        store,
        ("ch_1", 1, "USD", "paid", at(23, 59)),
        ("ch_2", 2, "USD", "paid", NEXT_DAY),
        ("ch_3", 3, "USD", "paid", NEXT_DAY + timedelta(hours=2)),
    )

    frame = find_ids(
        payments, ["ch_1", "ch_2", "ch_3"], start=NEXT_DAY, end=NEXT_DAY + timedelta(hours=1)
    )

    assert frame["id"].to_list() == ["ch_2"]


# --- insert_payment --------------------------------------------------------------------------


def test_insert_writes_once_then_reports_already_present(
    store: Store, payments: PaymentsTable
) -> None:
    row = NewPayment("ch_new", 1999, "usd", "succeeded", at(9))

    first = insert_payment(payments, row)
    second = insert_payment(
        payments, NewPayment("ch_new", 1, "USD", "failed", at(10) - timedelta(days=3))
    )

    assert (first, second) == (InsertResult.INSERTED, InsertResult.ALREADY_PRESENT)
    assert read_window(payments, DAY, NEXT_DAY).rows() == [
        ("ch_new", 1999, "USD", "succeeded", at(9), None, None, None)
    ]


def test_insert_counts_the_payments_other_id_as_present(
    store: Store, payments: PaymentsTable
) -> None:
    insert_payment(payments, NewPayment("pi_1", 1999, "usd", "succeeded", at(9)))

    again = insert_payment(
        payments, NewPayment("ch_1", 1999, "usd", "succeeded", at(9)), also=["ch_1", "pi_1"]
    )

    assert again is InsertResult.ALREADY_PRESENT and read_window(payments, DAY, NEXT_DAY)[
        "id"
    ].to_list() == ["pi_1"]


def test_major_unit_insert_writes_the_exact_decimal(store: Store) -> None:
    orders = custom(store)

    insert_payment(orders, NewPayment("ch_kwd", 1234, "KWD", "paid", at(1), refunded=1))
    insert_payment(orders, NewPayment("ch_usd", 1999, "USD", "paid", at(2), refunded=None))

    stored = store.run(
        f"SELECT charge_ref, total_major, refunded_major FROM {store.schema}.orders ORDER BY "
        "charge_ref"
    )
    # Decimal(str(...)): SQLite hands back its REAL as a Python float; equal Decimals compare equal.
    exact = [
        tuple(v if v is None or isinstance(v, str) else Decimal(str(v)) for v in row)
        for row in stored
    ]
    assert exact == [
        ("ch_kwd", Decimal("1.234"), Decimal("0.001")),
        ("ch_usd", Decimal("19.990"), None),
    ]


def test_insert_refuses_an_amount_the_column_cannot_hold_and_writes_nothing(store: Store) -> None:
    if store.kind == "sqlite":
        pytest.skip(
            "a SQLite column holds any value: see "
            "test_sqlite_strict_table_refuses_an_amount_and_writes_nothing"
        )
    store.run(
        "CREATE TABLE payments (stripe_charge_id TEXT, amount NUMERIC(12,0), currency TEXT, status "
        "TEXT, created_at TIMESTAMPTZ)"
    )
    table = store.mapping(RECON_PAYMENTS_AMOUNT_UNIT="major")

    with pytest.raises(
        PaymentsDataError,
        match=r"row 'ch_1' would store 19.99 \(major units of USD\) as 20 in column 'amount'",
    ):
        insert_payment(table, NewPayment("ch_1", 1999, "USD", "paid", at(1)))
    assert store.run("SELECT count(*) FROM payments") == [(0,)]


def test_unique_index_turns_an_uncommitted_application_insert_into_already_present(
    postgres_schema: Any,
) -> None:
    store = Store("postgres", postgres_schema.url, postgres_schema.name)
    store.run(DEFAULT_TABLE)
    store.run("CREATE UNIQUE INDEX payments_id ON payments (stripe_charge_id)")
    payments = store.mapping()
    outcome: list[InsertResult] = []
    sync = threading.Thread(
        target=lambda: outcome.append(
            insert_payment(payments, NewPayment("ch_1", 5, "USD", "paid", at(1)))
        )
    )
    # The application inserts the same charge and commits while our sync is under way: our
    # check cannot see its uncommitted row, so only the unique index can stop a duplicate.
    with psycopg.connect(store.url) as application:
        application.execute("INSERT INTO payments VALUES ('ch_1', 5, 'USD', 'paid', %s)", [at(1)])
        sync.start()
        wait_for_a_blocked_backend(store.url)  # the sync's INSERT waits on the uncommitted entry
        application.commit()
    sync.join()

    assert outcome == [InsertResult.ALREADY_PRESENT]
    assert store.run("SELECT count(*) FROM payments") == [(1,)]


def wait_for_a_blocked_backend(url: str) -> None:
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as observer:
        while not observer.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the sync never blocked on the application's row"
            time.sleep(0.01)


def test_concurrent_inserts_of_one_id_leave_one_row(store: Store, payments: PaymentsTable) -> None:
    ids, threads_per_id = [f"ch_race_{i}" for i in range(10)], 4
    results: list[InsertResult] = []
    barrier = threading.Barrier(threads_per_id)

    def sync(charge_id: str) -> None:
        barrier.wait()
        results.append(insert_payment(payments, NewPayment(charge_id, 100, "USD", "paid", at(5))))

    for charge_id in ids:
        threads = [threading.Thread(target=sync, args=(charge_id,)) for _ in range(threads_per_id)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert results.count(InsertResult.INSERTED) == len(ids)
    assert store.run("SELECT count(*), count(DISTINCT stripe_charge_id) FROM payments") == [
        (len(ids), len(ids))
    ]


# --- time zones (RECON_DB_TIMEZONE) ----------------------------------------------------------

NAIVE_TABLE = (
    "CREATE TABLE payments (stripe_charge_id TEXT, amount BIGINT, currency TEXT, status TEXT, "
    "created_at TIMESTAMP)"
)


def test_naive_created_at_is_read_in_recon_db_timezone(store: Store) -> None:
    store.run(NAIVE_TABLE)
    # Berlin is UTC+2 in May: its 00:30 on May 2 is 22:30 UTC on May 1.
    add(
        store,
        ("late", 1, "USD", "paid", datetime(2024, 5, 2, 0, 30)),
        ("next", 1, "USD", "paid", datetime(2024, 5, 2, 2, 0)),
    )

    frame = read_window(store.mapping(RECON_DB_TIMEZONE="Europe/Berlin"), DAY, NEXT_DAY)

    assert frame.select("id", "created_at").rows() == [("late", at(22, 30))]


def test_an_ambiguous_wall_time_at_dst_fall_back_is_the_earlier_instant(store: Store) -> None:
    store.run(NAIVE_TABLE)
    add(
        store, ("fold", 1, "USD", "paid", datetime(2024, 11, 3, 1, 30))
    )  # New York shows 01:30 twice
    table = store.mapping(RECON_DB_TIMEZONE="America/New_York")
    new_york = ZoneInfo("America/New_York")

    frame = read_window(
        table, datetime(2024, 11, 3, tzinfo=new_york), datetime(2024, 11, 4, tzinfo=new_york)
    )

    assert frame["created_at"].to_list() == [datetime(2024, 11, 3, 5, 30, tzinfo=UTC)]  # 01:30 EDT


def test_a_wall_time_in_a_dst_gap_is_an_invalid_row_of_its_wall_clock_day(store: Store) -> None:
    store.run(NAIVE_TABLE)
    add(
        store,
        ("gap", 1, "USD", "paid", datetime(2024, 3, 10, 2, 30)),
        ("ok", 1, "USD", "paid", datetime(2024, 3, 10, 3, 30)),
    )
    table = store.mapping(RECON_DB_TIMEZONE="America/New_York")
    new_york = ZoneInfo("America/New_York")

    day = read_window(
        table, datetime(2024, 3, 10, tzinfo=new_york), datetime(2024, 3, 11, tzinfo=new_york)
    )
    before = read_window(
        table, datetime(2024, 3, 9, tzinfo=new_york), datetime(2024, 3, 10, tzinfo=new_york)
    )

    assert invalid(day) == [
        (
            "gap",
            "created_at",
            "'2024-03-10 02:30:00' in created_at column 'created_at' is not a time "
            "in RECON_DB_TIMEZONE America/New_York (skipped by a daylight-saving change)",
        )
    ]
    assert before.is_empty()


def test_insert_into_a_naive_column_writes_the_wall_time_of_recon_db_timezone(store: Store) -> None:
    store.run(NAIVE_TABLE)
    table = store.mapping(RECON_DB_TIMEZONE="Asia/Tokyo")

    insert_payment(table, NewPayment("ch_1", 5, "USD", "paid", at(20)))  # 05:00 on May 2 in Tokyo

    assert read_window(table, DAY, NEXT_DAY)["created_at"].to_list() == [at(20)]
    wall = store.run("SELECT created_at FROM payments")[0][0]
    assert str(wall).startswith("2024-05-02 05:00:00")


def test_an_unknown_recon_db_timezone_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match=r"^RECON_DB_TIMEZONE: 'Mars/Olympus' is not a known IANA time zone"
    ):
        Settings.from_env({"RECON_DB_TIMEZONE": "Mars/Olympus"})


# --- float columns ---------------------------------------------------------------------------


def test_float_amounts_are_rounded_to_minor_units_with_one_warning(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.run(
        "CREATE TABLE payments (stripe_charge_id TEXT, amount DOUBLE PRECISION, currency TEXT, "
        "status TEXT, created_at TIMESTAMPTZ)"
    )
    add(store, ("ch_1", 0.1 + 0.2, "USD", "paid", at(1)), ("ch_2", 19.99, "USD", "paid", at(2)))
    table = store.mapping(RECON_PAYMENTS_AMOUNT_UNIT="major", RECON_PAYMENTS_TABLE="payments")
    normalise.forget_warnings()

    with caplog.at_level(logging.WARNING, logger="recon_dagster.sources.payments_db"):
        first = read_window(table, DAY, NEXT_DAY).sort("id")
        read_window(table, DAY, NEXT_DAY)

    assert first["amount"].to_list() == [30, 1999] and invalid(first) == []
    assert [r.getMessage() for r in caplog.records].count(
        "payments table payments: column 'amount' holds floating-point numbers, which may have "
        "lost cents; amounts are "
        "rounded to each currency's minor unit before they are compared. A DECIMAL/NUMERIC column "
        "(or integer minor "
        "units) keeps money exact."
    ) == 1


# --- MySQL / MariaDB -------------------------------------------------------------------------


@pytest.fixture
def mysql(mysql_database: Any) -> Store:
    return Store("mysql", mysql_database.url, mysql_database.other)


def test_mysql_timestamp_is_an_instant_and_datetime_a_wall_time(mysql: Store) -> None:
    mysql.run(
        "CREATE TABLE payments (stripe_charge_id VARCHAR(40), amount BIGINT, currency CHAR(3), "
        "status VARCHAR(20), "
        "created_at TIMESTAMP(6) NULL, booked_at DATETIME(6))"
    )
    mysql.run(
        "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?)",
        ("ch_1", 5, "USD", "paid", at(22, 30), datetime(2024, 5, 2, 0, 30)),
    )
    berlin = {"RECON_DB_TIMEZONE": "Europe/Berlin"}

    by_instant = read_window(mysql.mapping(**berlin), DAY, NEXT_DAY)
    by_wall = read_window(
        mysql.mapping(RECON_PAYMENTS_CREATED_AT_COLUMN="booked_at", **berlin), DAY, NEXT_DAY
    )

    assert by_instant["created_at"].to_list() == by_wall["created_at"].to_list() == [at(22, 30)]


def test_mysql_table_in_another_database_is_named_database_dot_table(mysql: Store) -> None:
    mysql.run(
        f"CREATE TABLE {mysql.schema}.payments (stripe_charge_id TEXT, amount BIGINT, currency "
        "TEXT, status TEXT, created_at TIMESTAMPTZ)"
    )
    mysql.run(
        f"INSERT INTO {mysql.schema}.payments VALUES (?, ?, ?, ?, ?)",
        ("ch_1", 5, "USD", "paid", at(1)),
    )

    frame = read_window(
        mysql.mapping(RECON_PAYMENTS_TABLE=f"{mysql.schema}.payments"), DAY, NEXT_DAY
    )

    assert frame["id"].to_list() == ["ch_1"]


def test_mariadb_url_is_the_same_as_mysql(mysql: Store) -> None:
    mysql.run(DEFAULT_TABLE)
    mysql.run("INSERT INTO payments VALUES (?, ?, ?, ?, ?)", ("ch_1", 5, "USD", "paid", at(1)))

    table = mysql.mapping(RECON_DATABASE_URL=mysql.url.replace("mysql://", "mariadb://", 1))

    assert read_window(table, DAY, NEXT_DAY)["id"].to_list() == ["ch_1"]


def test_mysql_connections_of_a_process_share_one_default_tls_context(mysql: Store) -> None:
    table = mysql.mapping()

    with mysql_connect_to(table) as first, mysql_connect_to(table) as second:
        with second.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        contexts = (first.ctx, second.ctx)

    assert contexts[0] is contexts[1]
    # PyMySQL's PREFERRED mode, unchanged: TLS if the server offers it (the connections above
    # worked whether it does or not), no certificate checked.
    assert (first.ssl, contexts[0].verify_mode) == (True, ssl.CERT_NONE)


def test_explicit_mysql_tls_options_get_a_context_of_their_own() -> None:
    def deferred(**tls: Any) -> SharedTlsConnection:
        return SharedTlsConnection(host="127.0.0.1", defer_connect=True, **tls)

    plain, verified = deferred(), deferred(ssl={"verify_mode": "required"})

    assert verified.ctx is not plain.ctx
    assert verified.ctx.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda u: u.replace("root@", "root:wr0ng-secret@", 1), r"Access denied for user 'root'"),
        (lambda u: u.replace("127.0.0.1", "no-such-host.invalid", 1), r"no-such-host\.invalid"),
        (
            lambda u: u.rsplit("/", 1)[0] + "/no_such_database",
            r"Unknown database 'no_such_database'",
        ),
    ],
    ids=["wrong password", "unknown host", "missing database"],
)
def test_mysql_connection_errors_say_what_and_where_without_the_password(
    mysql: Store, change: Any, reason: str
) -> None:
    table = mysql.mapping(RECON_DATABASE_URL=change(mysql.url))

    with pytest.raises(
        ConfigError,
        match=rf"^RECON_DATABASE_URL: cannot connect to mysql://root(:\*\*\*)?@[^ ]+ \(.*{reason}",
    ) as caught:
        validate(table)
    assert "wr0ng-secret" not in str(caught.value)


def test_a_mysql_column_that_cannot_hold_money_is_named(mysql: Store) -> None:
    mysql.run(
        "CREATE TABLE payments (stripe_charge_id TEXT, amount DATE, currency TEXT, status TEXT, "
        "created_at TIMESTAMPTZ)"
    )

    with pytest.raises(
        ConfigError,
        match=r"^RECON_PAYMENTS_AMOUNT_COLUMN: column 'amount' in table \w+\.payments has type "
        r"date",
    ):
        validate(mysql.mapping())


# --- SQLite ----------------------------------------------------------------------------------


@pytest.fixture
def lite(tmp_path: Path) -> Store:
    path = tmp_path / "app.db"
    sqlite3.connect(path).close()
    return Store("sqlite", f"sqlite:///{path}", "main")


def test_sqlite_reads_each_form_applications_store_times_in(lite: Store) -> None:
    lite.run(
        "CREATE TABLE payments (stripe_charge_id TEXT, amount INTEGER, currency TEXT, status TEXT, "
        "created_at DATETIME)"
    )
    noon = int(at(12).timestamp())
    lite.run(
        "INSERT INTO payments VALUES (?, 1, 'USD', 'paid', ?)",
        ("django", "2024-05-01 12:00:00.000000"),
        ("iso_t", "2024-05-01T12:00:00"),
        ("zulu", "2024-05-01T12:00:00Z"),
        ("offset", "2024-05-01 14:00:00+02:00"),
        ("prisma_ms", noon * 1000),
        ("epoch_s", noon),
        ("minutes", "2024-05-01 12:00"),
    )

    frame = read_window(lite.mapping(), DAY, NEXT_DAY)

    assert frame.height == 7 and set(frame["created_at"]) == {at(12)}


def test_sqlite_text_that_is_not_a_time_is_an_invalid_row(lite: Store) -> None:
    lite.run(
        "CREATE TABLE payments (stripe_charge_id TEXT, amount INTEGER, currency TEXT, status TEXT, "
        "created_at DATETIME)"
    )
    lite.run("INSERT INTO payments VALUES ('ch_bad', 1, 'USD', 'paid', '2024-05-01 soon')")

    frame = find_ids(lite.mapping(), ["ch_bad"])

    assert invalid(frame) == [
        (
            "ch_bad",
            "created_at",
            "'2024-05-01 soon' in created_at column 'created_at' is not a timestamp",
        )
    ]


def test_sqlite_decimal_column_is_rounded_like_a_float(lite: Store) -> None:
    orders = custom(lite)
    lite.run(
        "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
        ("ch_x", "10.005", "USD", "paid", at(1), None),
    )

    frame = read_window(orders, DAY, NEXT_DAY)

    assert frame["amount"].to_list() == [1001] and invalid(frame) == []


def test_sqlite_insert_keeps_the_tables_time_form(lite: Store) -> None:
    lite.run(
        "CREATE TABLE payments (stripe_charge_id TEXT, amount INTEGER, currency TEXT, status TEXT, "
        "created_at DATETIME)"
    )
    lite.run(
        "INSERT INTO payments VALUES ('ch_app', 1, 'USD', 'paid', ?)",
        (int(at(1).timestamp()) * 1000,),
    )  # Prisma: epoch ms

    insert_payment(lite.mapping(), NewPayment("ch_new", 5, "USD", "paid", at(2)))

    assert lite.run("SELECT created_at FROM payments WHERE stripe_charge_id = 'ch_new'") == [
        (int(at(2).timestamp()) * 1000,)
    ]


def test_sqlite_strict_table_refuses_an_amount_and_writes_nothing(lite: Store) -> None:
    lite.run(
        "CREATE TABLE payments (stripe_charge_id TEXT, amount INTEGER, currency TEXT, status TEXT, "
        "created_at TEXT) STRICT"
    )

    with pytest.raises(
        PaymentsDataError,
        match=r"cannot insert row 'ch_1': cannot store REAL value in INTEGER column "
        r"payments\.amount",
    ):
        insert_payment(
            lite.mapping(RECON_PAYMENTS_AMOUNT_UNIT="major"),
            NewPayment("ch_1", 1999, "USD", "paid", at(1)),
        )
    assert lite.run("SELECT count(*) FROM payments") == [(0,)]


def test_sqlite_missing_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"

    with pytest.raises(
        ConfigError,
        match=r"^RECON_DATABASE_URL: cannot open sqlite:///.*absent\.db \(no such SQLite file",
    ):
        validate(Settings.from_env({"RECON_DATABASE_URL": f"sqlite:///{path}"}).payments)
    assert not path.exists()


def test_sqlite_relative_url_is_resolved_against_the_project(tmp_path: Path) -> None:
    table = Settings.from_env(
        {"RECON_DATABASE_URL": "sqlite:///data/app.db"}, base_dir=tmp_path
    ).payments

    assert table.url == f"sqlite:///{tmp_path.resolve() / 'data' / 'app.db'}"


def duckdb_payments_file(path: Path, *rows: str) -> None:
    """A DuckDB payments table in the default column names, holding `rows` (SQL value lists)."""
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE payments (stripe_charge_id TEXT, amount BIGINT, currency TEXT, "
            "status TEXT, created_at TIMESTAMPTZ)"
        )
        for row in rows:
            con.execute(f"INSERT INTO payments VALUES {row}")


def test_a_duckdb_file_another_process_is_writing_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "app.duckdb"
    duckdb_payments_file(path)
    # Another process (a sync) holds the file's write lock for a moment.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(1.5); c.close()",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    table = Settings.from_env({"RECON_DATABASE_URL": f"duckdb:///{path}"}).payments
    found = find_ids(table, ["ch_1"])
    assert holder.wait(timeout=30) == 0 and found.height == 0


def test_a_duckdb_look_up_by_id_leaves_the_file_free_for_the_application(tmp_path: Path) -> None:
    path = tmp_path / "app.duckdb"
    duckdb_payments_file(path, "('ch_1', 500, 'usd', 'succeeded', now())")
    table = Settings.from_env({"RECON_DATABASE_URL": f"duckdb:///{path}"}).payments

    found = find_ids(table, ["ch_1"])

    # The application writes to its file straight after: the look-up holds no lock any more.
    writer = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]);"
            " c.execute(\"INSERT INTO payments VALUES ('ch_2', 1, 'usd', 'succeeded', now())\")",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert writer.returncode == 0, writer.stderr
    assert found.get_column("id").to_list() == ["ch_1"]
    assert find_ids(table, ["ch_1", "ch_2"]).height == 2


def test_a_duckdb_day_of_more_rows_than_a_brief_read_holds_is_read_whole(tmp_path: Path) -> None:
    # More than BRIEF_ROWS: counted on the attached file, then read from the file opened alone.
    path, rows = tmp_path / "app.duckdb", BRIEF_ROWS + 1
    duckdb_payments_file(path)
    with duckdb.connect(str(path)) as con:
        con.execute(
            "INSERT INTO payments SELECT 'ch_' || i, i, 'usd', 'succeeded', "
            "TIMESTAMPTZ '2024-05-06 00:00:00+00' + to_microseconds(i) FROM range(?) t(i)",
            [rows],
        )
    table = Settings.from_env({"RECON_DATABASE_URL": f"duckdb:///{path}"}).payments

    day = read_window(table, datetime(2024, 5, 6, tzinfo=UTC), datetime(2024, 5, 7, tzinfo=UTC))

    assert day.height == rows
    assert day.get_column("amount").sum() == rows * (rows - 1) // 2
