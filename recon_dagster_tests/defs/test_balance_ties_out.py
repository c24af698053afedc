"""`balance_ties_out` on the default SQLite DAGSTER_HOME, with the store (and the asset tables) in
DuckDB and in PostgreSQL: yesterday's closing balance is Stripe's `GET /v1/balance` less what
happened today, and a difference fails the day naming the currency."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from recon_dagster.definitions import build_defs
from recon_dagster.settings import Settings
from recon_dagster.testing.stripe_objects import make_balance_transaction
from recon_dagster_tests.support.instances import fresh_database
from recon_dagster_tests.support.scenario import API_KEY

TODAY = datetime.now(UTC).date()
YESTERDAY = TODAY - timedelta(days=1)


def at(day, hour: int) -> int:
    return int(datetime.combine(day, time(hour), tzinfo=UTC).timestamp())


@pytest.fixture
def server(serve):
    return serve(
        api_key=API_KEY,
        balance_transactions=[
            make_balance_transaction("txn_old", 10_000, fee=320, created=at(YESTERDAY, 0) - 86_400),
            make_balance_transaction("txn_y1", 5_000, fee=175, created=at(YESTERDAY, 9)),
            make_balance_transaction("txn_y2", -1_200, type="refund", created=at(YESTERDAY, 15)),
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


def ties_out(server, instance, monkeypatch, tmp_path, store_url):
    for name, value in {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_START_DATE": (YESTERDAY - timedelta(days=3)).isoformat(),
        "RECON_REPORT_STORE_URL": store_url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    job = build_defs(Settings.from_env()).resolve_job_def("balance_rollforward_job")
    run = job.execute_in_process(instance=instance, partition_key=YESTERDAY.isoformat())
    [evaluation] = run.get_asset_check_evaluations()
    return evaluation


def test_yesterday_ties_out_to_stripes_balance_less_todays_activity(
    server, instance, monkeypatch, tmp_path, store_url
):
    evaluation = ties_out(server, instance, monkeypatch, tmp_path, store_url)

    assert (evaluation.passed, evaluation.description) == (True, "Ties out to Stripe's balance.")
    assert evaluation.metadata["closing"].value == {"USD": 10_000 - 320 + 5_000 - 175 - 1_200}


def test_a_difference_to_stripes_balance_fails_the_day_naming_currency_and_amount(
    server, instance, monkeypatch, tmp_path, store_url
):
    server.connect_reserved = {"usd": 700}  # held by Stripe, moved by no transaction we can see

    evaluation = ties_out(server, instance, monkeypatch, tmp_path, store_url)

    assert not evaluation.passed
    assert evaluation.description == (
        "USD closes at 133.05 USD, Stripe's balance is 140.05 USD (difference -7.00 USD)"
    )
