"""The seed-parity service end to end: a table with other names in major units, a DST day, on
each of the four databases (DuckDB, PostgreSQL, MariaDB, SQLite)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from recon_dagster import ConfigError, Settings, create_billing_reconciliation_service
from recon_dagster.testing.stripe_server import StripeServer, make_charge
from recon_dagster_tests.support.databases import KINDS, execute
from recon_dagster_tests.support.scenario import API_KEY, at

TZ = "America/New_York"
SPRING = date(2024, 3, 10)  # 23 hours long in New York
# The same `orders` table on each database: other names, major units, a refunded column, and
# created_at as New York wall times (RECON_DB_TIMEZONE) in a column without a zone.
ORDERS_DDL = {
    "duckdb": "create table {schema}.orders (charge_ref varchar, total_major decimal(12, 3), cur "
    "varchar, state varchar, "
    "placed_at timestamp, refunded_major decimal(12, 3))",
    "postgres": "create table {schema}.orders (charge_ref text, total_major numeric(12, 3), cur "
    "text, state text, "
    "placed_at timestamp, refunded_major numeric(12, 3))",
    "mysql": "create table {schema}.orders (charge_ref varchar(64), total_major decimal(12, 3), "
    "cur char(3), state varchar(20), "
    "placed_at datetime(6), refunded_major decimal(12, 3))",
    "sqlite": "create table {schema}.orders (charge_ref text, total_major decimal(12, 3), cur "
    "text, state text, "
    "placed_at datetime, refunded_major decimal(12, 3))",
}


def orders_database(kind: str, request, tmp_path) -> tuple[str, str]:
    """(RECON_DATABASE_URL, the schema to put `orders` in) for one kind of database."""
    if kind == "duckdb":
        url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
        execute(url, "create schema billing")
        return url, "billing"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shop.db'}", "main"
    if kind == "mysql":
        database = request.getfixturevalue("mysql_database")
        return database.url, database.other
    schema = request.getfixturevalue("postgres_schema")
    return schema.url, schema.name


@pytest.fixture(params=KINDS)
def world(request, tmp_path):
    """Stripe charges and an `orders` table that disagree in one way per class."""

    def ts(hh, mm=0, ss=0, day=SPRING):
        return at(day, hh, mm, ss, tz=TZ)

    charges = [
        make_charge(
            "ch_ok", 1999, "usd", created=int(ts(0).timestamp())
        ),  # first second of the day
        make_charge("ch_yen", 1500, "jpy", created=int(ts(9).timestamp())),
        make_charge(
            "ch_lost", 5000, "usd", created=int(ts(10).timestamp())
        ),  # webhook never arrived
        make_charge("ch_twice", 2500, "usd", created=int(ts(11).timestamp())),
        make_charge("ch_declined", 4200, "usd", created=int(ts(12).timestamp()), status="failed"),
        make_charge(
            "ch_refunded", 3000, "usd", created=int(ts(13).timestamp()), amount_refunded=3000
        ),
        make_charge("ch_kwd", 1234, "kwd", created=int(ts(14).timestamp())),
        make_charge("ch_midnight", 800, "usd", created=int(ts(23, 59, 58).timestamp())),
    ]

    def wall(moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(TZ)).strftime("%Y-%m-%d %H:%M:%S")

    rows = [
        ("ch_ok", "19.99", "USD", "paid", ts(0, 0, 2), "0"),
        ("ch_yen", "1400", "JPY", "paid", ts(9, 0, 2), "0"),  # 100 yen short
        ("ch_twice", "25.00", "usd", "paid", ts(11, 0, 2), "0"),
        ("ch_twice", "25.00", "usd", "paid", ts(11, 0, 9), "0"),
        ("ch_declined", "42.00", "USD", "paid", ts(12, 0, 2), "0"),
        ("ch_refunded", "30.00", "USD", "paid", ts(13, 0, 2), "0"),  # refund never recorded
        ("ch_kwd", "1.234", "KWD", "paid", ts(14, 0, 2), "0"),
        ("ch_midnight", "8.00", "USD", "paid", ts(23, 59, 58) + timedelta(seconds=5), "0"),
        (
            "ch_manual_1",
            "12.50",
            "USD",
            "completed",
            ts(15),
            "0",
        ),  # entered by hand: no such charge
    ]
    url, schema = orders_database(request.param, request, tmp_path)
    execute(url, ORDERS_DDL[request.param].format(schema=schema))
    execute(
        url,
        f"insert into {schema}.orders values ({{0}}, {{0}}, {{0}}, {{0}}, {{0}}, {{0}})",
        [(a, b, c, d, wall(e), f) for a, b, c, d, e, f in rows],
    )
    with StripeServer(charges, api_key=API_KEY) as server:
        env = {
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_API_BASE": server.url,
            "RECON_TIMEZONE": TZ,
            "RECON_DATABASE_URL": url,
            "RECON_PAYMENTS_TABLE": f"{schema}.orders",
            "RECON_DB_TIMEZONE": TZ,
            "RECON_PAYMENTS_ID_COLUMN": "charge_ref",
            "RECON_PAYMENTS_AMOUNT_COLUMN": "total_major",
            "RECON_PAYMENTS_AMOUNT_UNIT": "major",
            "RECON_PAYMENTS_CURRENCY_COLUMN": "cur",
            "RECON_PAYMENTS_STATUS_COLUMN": "state",
            "RECON_PAYMENTS_CREATED_AT_COLUMN": "placed_at",
            "RECON_PAYMENTS_REFUNDED_COLUMN": "refunded_major",
            "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
        }
        yield create_billing_reconciliation_service(Settings.from_env(env, base_dir=tmp_path))


def kinds(result) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in result.findings:
        out.setdefault(f.kind, []).append(f.payment_id)
    return out


def test_every_class_is_found_on_a_dst_day_in_a_major_unit_table(world):
    result = world.reconcile(SPRING)
    assert kinds(result) == {
        "missing_in_database": ["ch_lost"],
        "missing_in_stripe": ["ch_manual_1"],
        "amount_mismatches": ["ch_yen"],
        "status_mismatches": ["ch_declined"],
        "refund_mismatches": ["ch_refunded"],
        "duplicates_in_database": ["ch_twice"],
        "timing_differences": ["ch_midnight"],
    }


def test_currencies_keep_their_own_exponents(world):
    totals = {t.currency: t for t in world.reconcile(SPRING).totals}
    assert (totals["JPY"].stripe_total, totals["JPY"].database_total) == (1500, 1400)
    assert (
        totals["KWD"].stripe_total,
        totals["KWD"].database_total,
        totals["KWD"].gross_discrepancy,
    ) == (1234, 1234, 0)


def test_the_report_is_stored_and_the_headline_is_the_worst_currency(world):
    result = world.reconcile(SPRING)
    assert result.currency == "USD"  # 5000 + 2500 + 4200 + 3000 + 1250 of ~14,000 beats JPY's 6.7%
    assert world.store().latest(SPRING) == result


def test_range_reconciles_the_midnight_pair_as_matched(world):
    result = world.reconcile(SPRING, SPRING + timedelta(days=1))
    assert "timing_differences" not in kinds(result)


def test_end_before_start_is_refused(world):
    with pytest.raises(ConfigError, match="end_date"):
        world.reconcile("2024-03-10", "2024-03-09")


def test_run_daily_reconciliation_reconciles_yesterday_in_the_configured_zone(world):
    result = world.run_daily_reconciliation()
    expected = datetime.now(ZoneInfo(TZ)).date() - timedelta(days=1)
    assert (result.date, result.end_date, result.timezone) == (expected, expected, TZ)
