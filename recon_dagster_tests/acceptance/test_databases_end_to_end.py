"""`RECON_DATABASE_URL=mysql://…` and `sqlite:///…` through what users run: a Dagster
materialization on the default instance, and the CLI's reconcile and sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from recon_dagster.stores.report_store import ReportStore
from recon_dagster_tests.support.databases import execute
from recon_dagster_tests.support.scenario import at

DAY = date(2024, 6, 3)
PAYMENTS_DDL = {
    "mysql": "create table payments (stripe_charge_id varchar(64), amount bigint, currency "
    "char(3), status varchar(20), "
    "created_at timestamp(6) null, amount_refunded bigint)",
    "sqlite": "create table payments (stripe_charge_id text, amount integer, currency text, status "
    "text, "
    "created_at datetime, amount_refunded integer)",
}


@pytest.fixture(params=["mysql", "sqlite"])
def app_url(request, tmp_path, world):
    """The default payments table on MariaDB or in a SQLite file, holding ch_kept only; Stripe
    also has ch_lost."""
    url = (
        request.getfixturevalue("mysql_database").url
        if request.param == "mysql"
        else f"sqlite:///{tmp_path / 'app.db'}"
    )
    execute(url, PAYMENTS_DDL[request.param])
    recorded = at(DAY, 9, 0, 2).replace(
        tzinfo=None
    )  # UTC wall time: MySQL sessions here are UTC, SQLite text is read in UTC
    execute(
        url,
        "insert into payments values ({0}, {0}, {0}, {0}, {0}, {0})",
        [
            (
                "ch_kept",
                1999,
                "USD",
                "succeeded",
                recorded if request.param == "mysql" else str(recorded),
                0,
            )
        ],
    )
    world.sale("ch_kept", 1999, at(DAY, 9), record=False)
    world.sale("ch_lost", 500, at(DAY, 10), record=False)
    return url


def test_a_day_materializes_through_dagster_from_the_database(
    world, app_url, instance, monkeypatch
):
    result = world.materialize(
        monkeypatch, DAY.isoformat(), instance=instance, RECON_DATABASE_URL=app_url
    )

    assert result.success
    report = ReportStore(world.environment()["RECON_REPORT_STORE_URL"]).latest(DAY)
    assert report.missing_in_database == ["ch_lost"]
    [check] = result.get_asset_check_evaluations()
    assert not check.passed


def test_cli_reconciles_syncs_and_then_finds_nothing_missing(world, app_url, tmp_path):
    def cli(*args: str) -> tuple[int, dict]:
        env = {**os.environ, **world.environment(RECON_DATABASE_URL=app_url)}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "recon_dagster.cli",
                *args,
                "--start",
                DAY.isoformat(),
                "--json",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, json.loads(done.stdout)

    code, before = cli("reconcile")
    assert (code, before["missing_in_database"]) == (1, ["ch_lost"])
    code, synced = cli("sync")
    assert (code, synced["synced"]) == (0, 1)
    code, after = cli("reconcile")
    assert (code, after["missing_in_database"], after["status"]) == (0, [], "success")
    code, again = cli("sync")
    assert (code, again["synced"]) == (0, 0)
