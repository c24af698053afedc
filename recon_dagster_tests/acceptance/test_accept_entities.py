"""Two Stripe accounts of two entities, each with its own key named in RECON_STRIPE_ACCOUNTS:
each is called with its own key, never another's, and the keys appear nowhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import dagster as dg
import duckdb
import pytest

from recon_dagster.definitions import build_defs, build_resources
from recon_dagster.defs.shared import ACCOUNTS, DAILY_JOB
from recon_dagster.settings import Settings
from recon_dagster.testing.stripe_server import StripeServer, make_charge
from recon_dagster_tests.support.scenario import at

DAY = date(2024, 7, 10)
EU_KEY, US_KEY = "sk_test_entity_eu_secret_0001", "sk_test_entity_us_secret_0002"


@pytest.fixture
def entities(tmp_path, monkeypatch):
    """`eu` sells in EUR and `us` in USD; the table lacks one of `us`'s charges."""
    server = StripeServer([], api_key="sk_test_unused_platform_key").start()
    server.add_keyed_account("eu", EU_KEY).add_charges(
        [make_charge("ch_eu1", 2_500, "eur", created=int(at(DAY).timestamp()))]
    )
    server.add_keyed_account("us", US_KEY).add_charges(
        [
            make_charge(cid, amount, created=int(at(DAY).timestamp()))
            for cid, amount in (("ch_us1", 1_000), ("ch_us2", 400))
        ]
    )
    db = tmp_path / "app.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table payments (stripe_charge_id varchar, amount bigint, currency varchar, "
            "status varchar, created_at timestamptz, entity varchar)"
        )
        for row in (("ch_eu1", 2_500, "EUR", "eu"), ("ch_us1", 1_000, "USD", "us")):
            con.execute(
                "insert into payments values (?, ?, ?, 'succeeded', ?, ?)",
                [row[0], row[1], row[2], at(DAY, 12, 0, 2), row[3]],
            )
    env = {
        "STRIPE_API_BASE": server.url,
        "RECON_STRIPE_ACCOUNTS": "eu:STRIPE_API_KEY_EU,us:STRIPE_API_KEY_US",
        "STRIPE_API_KEY_EU": EU_KEY,
        "STRIPE_API_KEY_US": US_KEY,
        "RECON_ACCOUNT_COLUMN": "entity",
        "RECON_DATABASE_URL": f"duckdb:///{db}",
        "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
        "RECON_START_DATE": "2024-07-01",
    }
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    yield server
    server.stop()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recon_dagster.cli", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_reconciles_each_entity_with_its_own_key(entities):
    done = cli("reconcile", "--start", DAY.isoformat(), "--json")
    out = json.loads(done.stdout)
    assert {a["account"]: a["missing_in_database"] for a in out["accounts"]} == {
        "eu": [],
        "us": ["ch_us2"],
    }
    assert {t["currency"]: t["stripe_total"] for t in out["totals"]} == {
        "EUR": "25.00",
        "USD": "14.00",
    }
    # Each account's requests came with its own key (the server routes by key).
    assert {r.account for r in entities.requests} == {"eu", "us"}
    for key in (EU_KEY, US_KEY):
        assert key not in done.stdout + done.stderr


def test_the_sensor_adds_the_named_entities_and_dagster_reconciles_one(entities, instance):
    settings = Settings.from_env()
    defs = build_defs(settings)
    sensor = defs.resolve_sensor_def("stripe_accounts_sensor")
    context = dg.build_sensor_context(instance=instance, resources=build_resources(settings))
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    [request] = result.dynamic_partitions_requests or []
    assert isinstance(request, dg.AddDynamicPartitionsRequest)
    assert list(request.partition_keys) == ["eu", "us"]
    instance.add_dynamic_partitions(ACCOUNTS.name or "", ["eu", "us"])
    run = defs.resolve_job_def(DAILY_JOB).execute_in_process(
        instance=instance, partition_key=f"us|{DAY}"
    )
    assert run.success
    [check] = run.get_asset_check_evaluations()
    assert (check.passed, check.metadata["account"].value) == (False, "us")
    text = json.dumps(
        [str(e) for e in instance.all_logs(run.run_id)], default=str
    )  # every event of the run
    for key in (EU_KEY, US_KEY):
        assert key not in text


def test_a_missing_key_variable_is_named_before_anything_runs(entities, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY_US")
    done = cli("reconcile", "--start", DAY.isoformat(), "--json")
    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert "STRIPE_API_KEY_US" in error and "'us'" in error
