"""The payments table on real DuckDB files and real PostgreSQL: reading, validating, inserting."""

from __future__ import annotations

import tempfile
import threading
import time
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
from hypothesis import given, settings
from hypothesis import strategies as st

from recon_dagster.core.frames import PAYMENTS_SCHEMA
from recon_dagster.money import to_major
from recon_dagster.payments_db import (
    InsertResult,
    NewPayment,
    PaymentsDataError,
    find_ids,
    insert_payment,
    read_window,
    validate,
)
from recon_dagster.settings import ConfigError, PaymentsTable, Settings

DAY = datetime(2024, 5, 1, tzinfo=UTC)
NEXT_DAY = DAY + timedelta(days=1)
DEFAULT_TABLE = (
    "CREATE TABLE payments (stripe_charge_id TEXT, amount BIGINT, currency TEXT, status TEXT, created_at TIMESTAMPTZ)"
)


@dataclass
class Store:
    """One database under test; `schema` is where schema-qualified tables go."""

    kind: str
    url: str
    schema: str

    def run(self, statement: str, *rows: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run one statement (with `?` placeholders) once, or once per row; return the last result."""
        if self.kind == "duckdb":
            with duckdb.connect(self.url.removeprefix("duckdb:///")) as con:
                for row in rows or [()]:
                    con.execute(statement, list(row))
                return con.fetchall() if con.description else []
        with psycopg.connect(self.url, autocommit=True) as conn:
            result: list[tuple[Any, ...]] = []
            for row in rows or [()]:
                cur = conn.execute(statement.replace("?", "%s"), list(row))
                result = cur.fetchall() if cur.description else []
            return result

    def mapping(self, **env: str) -> PaymentsTable:
        """The table as the application would configure it, through Settings."""
        return Settings.from_env({"RECON_DATABASE_URL": self.url, **env}).payments


@pytest.fixture(params=["duckdb", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "duckdb":
        path = tmp_path / "app.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE SCHEMA billing")
        return Store("duckdb", f"duckdb:///{path}", "billing")
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
        f"CREATE TABLE {store.schema}.orders (charge_ref TEXT, total_major NUMERIC(12,3), cur TEXT, "
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


def test_default_table_in_minor_units_reads_as_payments_frame(store: Store, payments: PaymentsTable) -> None:
    add(store, ("ch_1", 1999, "usd", "succeeded", at(10)), ("ch_2", 500, "EUR", "failed", at(11)))

    frame = read_window(payments, DAY, NEXT_DAY).sort("id")

    assert frame.schema == pl.Schema(PAYMENTS_SCHEMA)
    assert frame.to_dicts() == [
        {"id": "ch_1", "amount": 1999, "currency": "USD", "status": "succeeded", "created_at": at(10), "refunded": None,
         "invalid_column": None, "invalid_reason": None},
        {"id": "ch_2", "amount": 500, "currency": "EUR", "status": "failed", "created_at": at(11), "refunded": None,
         "invalid_column": None, "invalid_reason": None},
    ]  # fmt: skip


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
    store.run("CREATE TABLE payments (stripe_charge_id TEXT, amount DOUBLE PRECISION, currency TEXT, status TEXT, created_at TIMESTAMPTZ)")
    add(store, ("ch_1", 0.29, "USD", "paid", at(1)), ("ch_2", 1e16, "JPY", "paid", at(2)))

    frame = read_window(store.mapping(RECON_PAYMENTS_AMOUNT_UNIT="major"), DAY, NEXT_DAY).sort("id")

    # 0.29 * 100 is 28.999999999999996 in floats; 1e16 is printed in exponent notation.
    assert frame["amount"].to_list() == [29, 10**16]


def test_empty_window_reads_as_an_empty_payments_frame(store: Store, payments: PaymentsTable) -> None:
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
def test_major_text_amounts_read_back_as_the_exact_minor_units(amounts: list[tuple[int, str, int]]) -> None:
    def text(minor: int, code: str, trailing_zeros: int) -> str:
        plain = format(to_major(minor, code), "f")
        return plain + ("" if "." in plain or not trailing_zeros else ".") + "0" * trailing_zeros

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "app.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE TABLE payments (stripe_charge_id TEXT, amount TEXT, currency TEXT, status TEXT, created_at TIMESTAMPTZ)")
            con.executemany(
                "INSERT INTO payments VALUES (?, ?, ?, 'paid', ?)",
                [(f"ch_{i}", text(*amount), amount[1], DAY) for i, amount in enumerate(amounts)],
            )
        table = Settings.from_env({"RECON_DATABASE_URL": f"duckdb:///{path}", "RECON_PAYMENTS_AMOUNT_UNIT": "major"}).payments

        frame = read_window(table, DAY, NEXT_DAY)

    assert dict(frame.select("id", "amount").rows()) == {f"ch_{i}": minor for i, (minor, _, _) in enumerate(amounts)}


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
    assert frame.filter(pl.col("id") == "at_start")["created_at"].item() == datetime(2024, 3, 10, 5, tzinfo=UTC)


def test_naive_created_at_column_is_taken_as_utc(store: Store) -> None:
    store.run("CREATE TABLE payments (stripe_charge_id TEXT, amount BIGINT, currency TEXT, status TEXT, created_at TIMESTAMP)")
    add(store, ("late", 1, "USD", "paid", datetime(2024, 5, 1, 23, 30)), ("next", 1, "USD", "paid", datetime(2024, 5, 2)))
    payments = store.mapping()

    frame = read_window(payments, DAY, NEXT_DAY)

    assert validate(payments).created_at_has_timezone is False
    assert frame.rows() == [("late", 1, "USD", "paid", at(23, 30), None, None, None)]


def test_reserved_and_mixed_case_names_are_quoted(store: Store) -> None:
    store.run('CREATE TABLE "order" ("user" TEXT, "Select" BIGINT, "from" TEXT, "where" TEXT, "Group" TIMESTAMPTZ)')
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
    assert (info.amount_kind, info.refunded_kind, info.created_at_has_timezone) == ("decimal", "decimal", True)
    assert list(info.columns) == ["charge_ref", "total_major", "cur", "state", "placed_at", "refunded_major"]


# --- clear errors ----------------------------------------------------------------------------


def test_missing_table_names_the_variable_and_the_table(store: Store) -> None:
    with pytest.raises(ConfigError, match=r"^RECON_PAYMENTS_TABLE: table payments not found") as caught:
        validate(store.mapping())
    assert caught.value.variable == "RECON_PAYMENTS_TABLE"


def test_missing_column_names_the_variable_and_lists_the_columns(store: Store, payments: PaymentsTable) -> None:
    table = store.mapping(RECON_PAYMENTS_AMOUNT_COLUMN="amt")

    with pytest.raises(
        ConfigError, match=r"^RECON_PAYMENTS_AMOUNT_COLUMN: column 'amt' not found in table \w+\.payments \(columns: stripe_charge_id, amount,"
    ):
        read_window(table, DAY, NEXT_DAY)


def invalid(frame: pl.DataFrame) -> list[tuple]:
    return frame.filter(pl.col("invalid_reason").is_not_null()).select("id", "invalid_column", "invalid_reason").rows()


def test_null_amount_marks_the_row_invalid_and_keeps_the_others(store: Store, payments: PaymentsTable) -> None:
    add(store, ("ch_ok", 1, "USD", "paid", at(1)), ("ch_9", None, "USD", "paid", at(2)))

    frame = read_window(payments, DAY, NEXT_DAY)

    assert invalid(frame) == [("ch_9", "amount", "NULL in amount column 'amount'")]
    assert frame.filter(pl.col("id") == "ch_ok")["amount"].to_list() == [1]


def test_amount_that_is_not_whole_minor_units_marks_the_row_invalid(store: Store) -> None:
    orders = custom(store)
    store.run(f"INSERT INTO {store.schema}.orders VALUES (?, ?, ?, ?, ?, ?)", ("ch_x", Decimal("10.005"), "USD", "paid", at(1), None))

    assert invalid(read_window(orders, DAY, NEXT_DAY)) == [
        ("ch_x", "total_major", "'10.005' in amount column 'total_major' is not a whole number of minor units of USD (2 decimals)")
    ]


@pytest.mark.parametrize("code", ["US", "xyz"])
def test_a_currency_that_is_not_iso_4217_marks_the_row_invalid(store: Store, payments: PaymentsTable, code: str) -> None:
    add(store, ("ch_1", 1, code, "paid", at(1)))

    assert invalid(read_window(payments, DAY, NEXT_DAY)) == [
        ("ch_1", "currency", f"{code.upper()} in currency column 'currency' is not an ISO 4217 currency code")
    ]


def test_null_id_and_null_currency_are_named(store: Store, payments: PaymentsTable) -> None:
    add(store, (None, 5, "USD", "paid", at(1)), ("ch_2", 5, None, "paid", at(2)))

    assert set(invalid(read_window(payments, DAY, NEXT_DAY))) == {
        (None, "stripe_charge_id", "NULL in id column 'stripe_charge_id'"),
        ("ch_2", "currency", "NULL in currency column 'currency'"),
    }


def test_unreachable_postgres_error_redacts_the_password() -> None:
    table = Settings.from_env({"RECON_DATABASE_URL": "postgresql://app:s3cret-pw@127.0.0.1:1/shop"}).payments

    with pytest.raises(ConfigError) as caught:
        validate(table)

    assert str(caught.value).startswith("RECON_DATABASE_URL: cannot connect to postgresql://app:***@127.0.0.1:1/shop (")
    assert "s3cret-pw" not in str(caught.value)


def test_missing_duckdb_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.duckdb"
    table = Settings.from_env({"RECON_DATABASE_URL": f"duckdb:///{path}"}).payments

    with pytest.raises(ConfigError, match=r"^RECON_DATABASE_URL: cannot open duckdb:///.*absent\.duckdb \(no such DuckDB file\)"):
        validate(table)
    assert not path.exists()


# --- find_ids --------------------------------------------------------------------------------


def test_find_ids_returns_the_asked_rows_anywhere_in_the_table(store: Store, payments: PaymentsTable) -> None:
    add(store, ("ch_1", 1, "USD", "paid", at(1)), ("ch_2", 2, "USD", "paid", at(2) - timedelta(days=30)), ("ch_3", 3, "USD", "paid", at(3)))

    frame = find_ids(payments, ["ch_2", "ch_3", "ch_missing"] + [f"other_{i}" for i in range(3000)])

    assert frame.schema == pl.Schema(PAYMENTS_SCHEMA)
    assert sorted(frame["id"]) == ["ch_2", "ch_3"]


def test_find_ids_within_a_window_skips_rows_outside_it(store: Store, payments: PaymentsTable) -> None:
    add(store, ("ch_1", 1, "USD", "paid", at(23, 59)), ("ch_2", 2, "USD", "paid", NEXT_DAY), ("ch_3", 3, "USD", "paid", NEXT_DAY + timedelta(hours=2)))

    frame = find_ids(payments, ["ch_1", "ch_2", "ch_3"], start=NEXT_DAY, end=NEXT_DAY + timedelta(hours=1))

    assert frame["id"].to_list() == ["ch_2"]


# --- insert_payment --------------------------------------------------------------------------


def test_insert_writes_once_then_reports_already_present(store: Store, payments: PaymentsTable) -> None:
    row = NewPayment("ch_new", 1999, "usd", "succeeded", at(9))

    first = insert_payment(payments, row)
    second = insert_payment(payments, NewPayment("ch_new", 1, "USD", "failed", at(10) - timedelta(days=3)))

    assert (first, second) == (InsertResult.INSERTED, InsertResult.ALREADY_PRESENT)
    assert read_window(payments, DAY, NEXT_DAY).rows() == [("ch_new", 1999, "USD", "succeeded", at(9), None, None, None)]


def test_insert_counts_the_payments_other_id_as_present(store: Store, payments: PaymentsTable) -> None:
    insert_payment(payments, NewPayment("pi_1", 1999, "usd", "succeeded", at(9)))

    again = insert_payment(payments, NewPayment("ch_1", 1999, "usd", "succeeded", at(9)), also=["ch_1", "pi_1"])

    assert again is InsertResult.ALREADY_PRESENT and read_window(payments, DAY, NEXT_DAY)["id"].to_list() == ["pi_1"]


def test_major_unit_insert_writes_the_exact_decimal(store: Store) -> None:
    orders = custom(store)

    insert_payment(orders, NewPayment("ch_kwd", 1234, "KWD", "paid", at(1), refunded=1))
    insert_payment(orders, NewPayment("ch_usd", 1999, "USD", "paid", at(2), refunded=None))

    stored = store.run(f"SELECT charge_ref, total_major, refunded_major FROM {store.schema}.orders ORDER BY charge_ref")
    assert stored == [("ch_kwd", Decimal("1.234"), Decimal("0.001")), ("ch_usd", Decimal("19.990"), None)]


def test_insert_refuses_an_amount_the_column_cannot_hold_and_writes_nothing(store: Store) -> None:
    store.run("CREATE TABLE payments (stripe_charge_id TEXT, amount NUMERIC(12,0), currency TEXT, status TEXT, created_at TIMESTAMPTZ)")
    table = store.mapping(RECON_PAYMENTS_AMOUNT_UNIT="major")

    with pytest.raises(PaymentsDataError, match=r"row 'ch_1' would store 19.99 \(major units of USD\) as 20 in column 'amount'"):
        insert_payment(table, NewPayment("ch_1", 1999, "USD", "paid", at(1)))
    assert store.run("SELECT count(*) FROM payments") == [(0,)]


def test_unique_index_turns_an_uncommitted_application_insert_into_already_present(postgres_schema: Any) -> None:
    store = Store("postgres", postgres_schema.url, postgres_schema.name)
    store.run(DEFAULT_TABLE)
    store.run("CREATE UNIQUE INDEX payments_id ON payments (stripe_charge_id)")
    payments = store.mapping()
    outcome: list[InsertResult] = []
    sync = threading.Thread(target=lambda: outcome.append(insert_payment(payments, NewPayment("ch_1", 5, "USD", "paid", at(1)))))
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
    assert store.run("SELECT count(*), count(DISTINCT stripe_charge_id) FROM payments") == [(len(ids), len(ids))]
