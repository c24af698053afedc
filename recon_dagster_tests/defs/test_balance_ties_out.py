"""`balance_ties_out` on the default SQLite DAGSTER_HOME, with the store (and the asset tables) in
DuckDB and in PostgreSQL: yesterday's closing balance is Stripe's `GET /v1/balance` less what
happened today, and a difference fails the day naming the currency."""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, time, timedelta

import pytest

from recon_dagster.definitions import build_defs
from recon_dagster.settings import Settings
from recon_dagster.testing.stripe_objects import make_balance_transaction
from recon_dagster_tests.support.instances import fresh_database
from recon_dagster_tests.support.scenario import API_KEY

# The check compares with Stripe's balance only for yesterday and today, read from the clock when
# the check runs; a test straddling midnight would check a day that had just become the day before
# yesterday (CI once started these at 23:59 and ran them at 00:04).
MIDNIGHT_MARGIN = 120


@pytest.fixture
def yesterday() -> date:
    """Yesterday's date, after waiting out the minutes either side of midnight UTC."""
    now = datetime.now(UTC)
    since = now - datetime.combine(now.date(), time(0), tzinfo=UTC)
    to_next = 86_400 - since.total_seconds()
    if to_next < MIDNIGHT_MARGIN:
        clock.sleep(to_next + MIDNIGHT_MARGIN)
    elif since.total_seconds() < MIDNIGHT_MARGIN:
        clock.sleep(MIDNIGHT_MARGIN - since.total_seconds())
    return datetime.now(UTC).date() - timedelta(days=1)


def at(day, hour: int) -> int:
    return int(datetime.combine(day, time(hour), tzinfo=UTC).timestamp())


@pytest.fixture
def server(serve, yesterday):
    return serve(
        api_key=API_KEY,
        balance_transactions=[
            make_balance_transaction("txn_old", 10_000, fee=320, created=at(yesterday, 0) - 86_400),
            make_balance_transaction("txn_y1", 5_000, fee=175, created=at(yesterday, 9)),
            make_balance_transaction("txn_y2", -1_200, type="refund", created=at(yesterday, 15)),
            # Today's (a minute ago): in Stripe's balance now, not in yesterday's closing.
            make_balance_transaction(
                "txn_today", 777, created=int(datetime.now(UTC).timestamp()) - 60
            ),
        ],
    )


@pytest.fixture(params=["duckdb", "postgres"])
def store_url(request, tmp_path):
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'recon.duckdb'}"
        return
    yield from fresh_database(request.getfixturevalue("postgres_url"), "recon_close_test")


def ties_out(server, instance, monkeypatch, tmp_path, store_url, yesterday):
    for name, value in {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_START_DATE": (yesterday - timedelta(days=3)).isoformat(),
        "RECON_REPORT_STORE_URL": store_url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    job = build_defs(Settings.from_env()).resolve_job_def("balance_rollforward_job")
    run = job.execute_in_process(instance=instance, partition_key=yesterday.isoformat())
    [evaluation] = run.get_asset_check_evaluations()
    return evaluation


def test_yesterday_ties_out_to_stripes_balance_less_todays_activity(
    server, instance, monkeypatch, tmp_path, store_url, yesterday
):
    evaluation = ties_out(server, instance, monkeypatch, tmp_path, store_url, yesterday)

    assert (evaluation.passed, evaluation.description) == (True, "Ties out to Stripe's balance.")
    assert evaluation.metadata["closing"].value == {"USD": 10_000 - 320 + 5_000 - 175 - 1_200}


def test_a_difference_to_stripes_balance_fails_the_day_naming_currency_and_amount(
    server, instance, monkeypatch, tmp_path, store_url, yesterday
):
    server.connect_reserved = {"usd": 700}  # held by Stripe, moved by no transaction we can see

    evaluation = ties_out(server, instance, monkeypatch, tmp_path, store_url, yesterday)

    assert not evaluation.passed
    assert evaluation.description == (
        "USD closes at 133.05 USD, Stripe's balance is 140.05 USD (difference -7.00 USD)"
    )
