"""A day's balance transactions read from a Stripe mirror in real PostgreSQL: the same rows as
the API gives where the mirror keeps them (Stripe Data Pipeline), the API where it does not
(stripe-sync-engine), and a broken row quarantined by name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from recon_dagster.definitions import build_defs
from recon_dagster.settings import Settings
from recon_dagster.sources.stripe_balance import fetch_balance_transactions
from recon_dagster.sources.stripe_client import make_client
from recon_dagster.sources.stripe_mirror import detect
from recon_dagster.sources.stripe_mirror_balance import fetch_balance_transactions as from_mirror
from recon_dagster.sources.stripe_mirror_payouts import describe
from recon_dagster.testing.mirror import create_mirror, load_balance_transactions
from recon_dagster.testing.stripe_server import PAYOUT_FIELD, make_balance_transaction
from recon_dagster_tests.support.scenario import API_KEY

START = datetime(2026, 11, 3, tzinfo=UTC)
END = START + timedelta(days=1)
T0 = int(START.timestamp())
SYNCED = datetime(2026, 11, 5, tzinfo=UTC)


@pytest.fixture
def world(serve, postgres_url):
    txns = [
        make_balance_transaction(
            f"txn_{i:03d}",
            1_000 + i,
            fee=59,
            created=T0 - 3_600 + i * 2_400,  # from an hour before the day to after it
            available_on=T0 + 2 * 86_400,
            type="charge" if i % 3 else "refund",
        )
        for i in range(40)
    ]
    server = serve(api_key=API_KEY, balance_transactions=txns)
    schema = f"mirror_{uuid.uuid4().hex[:10]}"
    yield {"server": server, "txns": txns, "url": postgres_url, "schema": schema}
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def mirrored(world, layout: str, txns=None):
    create_mirror(world["url"], world["schema"], layout)
    if layout == "data_pipeline":
        load_balance_transactions(
            world["url"], world["schema"], txns or world["txns"], SYNCED, PAYOUT_FIELD
        )
    return detect(world["url"], world["schema"])


def test_the_mirror_gives_the_days_rows_the_api_gives(world):
    mirror = mirrored(world, "data_pipeline")
    client = make_client(API_KEY, api_base=world["server"].url)

    read = from_mirror(mirror, describe(mirror), START, END)

    assert read.equals(fetch_balance_transactions(client, START, END))
    assert read.height == 36


def test_a_mirror_row_with_a_null_amount_is_quarantined_by_name(world):
    broken = make_balance_transaction("txn_broken", 1, created=T0 + 60)
    broken["amount"] = None
    mirror = mirrored(world, "data_pipeline", [broken])

    [row] = from_mirror(mirror, describe(mirror), START, END).to_dicts()

    assert (row["invalid_column"], row["invalid_reason"]) == (
        "amount",
        "balance transaction txn_broken: amount None is not an integer of minor units",
    )


@pytest.mark.parametrize(
    ("layout", "source"), [("data_pipeline", "mirror"), ("sync_engine", "api")]
)
def test_the_daily_asset_reads_the_mirror_only_where_it_keeps_balance_transactions(
    world, layout, source, instance, monkeypatch, tmp_path
):
    mirrored(world, layout)
    for name, value in {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": world["server"].url,
        "RECON_STRIPE_SOURCE": world["url"],
        "RECON_STRIPE_MIRROR_SCHEMA": world["schema"],
        "RECON_START_DATE": "2026-11-01",
        "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    job = build_defs(Settings.from_env()).resolve_job_def("balance_rollforward_job")

    run = job.execute_in_process(instance=instance, partition_key="2026-11-03")

    [read] = run.asset_materializations_for_node("stripe_balance_transactions")
    assert (read.metadata["stripe_source"].value, read.metadata["row_count"].value) == (source, 36)
