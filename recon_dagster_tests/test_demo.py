"""`recon-dagster demo` as a new user runs it, then the instance `dagster dev` would show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from recon_dagster.defs.charges.checks import CHECK_NAME, REPORT as REPORT_KEY
from recon_dagster.demo import failure_cause
from recon_dagster_tests.support.scenario import API_KEY

# A module-scoped fixture (an expensive world) is built once: every test of this file runs on one
# xdist worker.
pytestmark = pytest.mark.xdist_group("test_demo")


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "STRIPE_", "DAGSTER_"))
    }
    out = subprocess.run(
        [sys.executable, "-m", "recon_dagster.cli", "demo", "--port", "0"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return root, out


def test_demo_exits_zero_and_prints_a_summary_with_every_verdict(demo):
    _, out = demo
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line[:4].isdigit()]
    days = [line for line in lines if line.split()[1] in ("success", "discrepancy_found", "error")]
    assert len(days) == 7
    verdicts = {line.split()[2] for line in days}
    assert {"PASS", "WARN", "CRITICAL"} <= verdicts
    assert "dagster dev" in out.stdout


def test_demo_summary_shows_the_payout_stories(demo):
    _, out = demo
    # arrival, payout, status, amount, currency, itemized, currency, bank line, problems...
    payouts = [
        line.split()
        for line in out.stdout.splitlines()
        if line[:4].isdigit() and " po_demo" in line
    ]
    assert len(payouts) == 18  # six arrival days, one payout per currency sold the day before
    assert any(p[2] == "paid" and p[7] == "-" and p[-1] == "missing_in_bank" for p in payouts)
    assert any(p[2] == "failed" and "failed," in p for p in payouts)
    assert "deposit without payout: STRIPE TRANSFER 8812" in out.stdout


def test_demo_leaves_seven_materialized_days_with_a_check_result_each(demo, monkeypatch):
    root, _ = demo
    monkeypatch.setenv("DAGSTER_HOME", str(root))
    with dg.DagsterInstance.get() as instance:
        for key in ("stripe_charges", "db_payments", "reconciliation_report"):
            assert len(instance.get_materialized_partitions(dg.AssetKey(key))) == 7
        check_key = dg.AssetCheckKey(REPORT_KEY, CHECK_NAME)
        records = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=50)
        partitions = {
            r.event.dagster_event.asset_check_evaluation_data.partition for r in records if r.event
        }
    assert len(partitions) == 7


def test_demo_writes_env_for_dagster_dev_and_data_under_data_demo(demo):
    root, _ = demo
    env = (root / ".env").read_text()
    assert f"DAGSTER_HOME={root}" in env and "STRIPE_API_BASE=http://127.0.0.1:" in env
    assert (root / "data" / "demo" / "app.duckdb").exists()
    assert (root / "data" / "demo" / "stripe_charges.json").exists()
    assert (root / "data" / "recon.duckdb").exists()


def test_demo_prints_one_line_per_step_and_no_dagster_log(demo):
    _, out = demo
    steps = [line for line in out.stdout.splitlines() if line.startswith("[")]
    assert [s[:5] for s in steps] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert "14/14 runs done (charges, payouts, then the balance)" in steps[2]
    assert "DEBUG" not in out.stdout + out.stderr and "STEP_START" not in out.stdout + out.stderr
    assert "Warning" not in out.stderr and "Telemetry" not in out.stderr


def test_demo_rolls_the_weeks_balance_forward_and_it_ties_out_to_stripe(demo):
    _, out = demo
    verdicts = [line for line in out.stdout.splitlines() if "Stripe's balance now" in line]
    assert [line[:4] for line in verdicts] == ["EUR:", "JPY:", "USD:"]
    assert all(line.endswith(": ties out") for line in verdicts)


def test_demo_instance_file_is_the_repositorys_dagster_yaml(demo):
    root, _ = demo
    assert yaml.safe_load((root / "dagster.yaml").read_text()) == yaml.safe_load(
        (REPO / "dagster.yaml").read_text()
    )


def test_a_failed_run_is_reported_by_its_cause(world, instance, monkeypatch):
    world.server.fail_next(500, count=50)
    result = world.materialize(monkeypatch, "2024-03-04", instance=instance)
    cause = failure_cause(result)
    assert (
        cause.startswith("stripe_charges: ")
        and "Could not read Stripe charges for 2024-03-04" in cause
    )
    assert "\n" not in cause and API_KEY not in cause


def test_demo_late_changes_reopens_exactly_the_two_changed_days(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "STRIPE_", "DAGSTER_"))
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recon_dagster.cli",
            "demo",
            "--port",
            "0",
            "--days",
            "5",
            "--late-changes",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    [reopened] = [
        line for line in out.stdout.splitlines() if "stripe_late_changes re-opens" in line
    ]
    days = reopened.rsplit(": ", 1)[1].split(", ")
    assert len(days) == 2
    versions = [
        line.split()
        for line in out.stdout.splitlines()
        if line.startswith("  ") and " v2 late_change " in line
    ]
    assert sorted(v[0] for v in versions) == sorted(days)
    assert {v[-1].rstrip(")") for v in versions} == {"refund_mismatches", "disputes"}
    assert (
        " - dagster - " not in out.stdout + out.stderr
    )  # the demo's own lines only, as without --late-changes
