"""`recon-dagster demo` as a new user runs it, then the instance `dagster dev` would show."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest

from recon_dagster.checks import CHECK_NAME, REPORT_KEY


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "STRIPE_", "DAGSTER_"))}
    out = subprocess.run([sys.executable, "-m", "recon_dagster.cli", "demo", "--port", "0"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    return root, out


def test_demo_exits_zero_and_prints_a_summary_with_every_verdict(demo):
    _, out = demo
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line[:4].isdigit()]
    assert len(lines) == 7
    verdicts = {line.split()[2] for line in lines}
    assert {"PASS", "WARN", "CRITICAL"} <= verdicts
    assert "dagster dev" in out.stdout


def test_demo_leaves_seven_materialized_days_with_a_check_result_each(demo, monkeypatch):
    root, _ = demo
    monkeypatch.setenv("DAGSTER_HOME", str(root))
    with dg.DagsterInstance.get() as instance:
        for key in ("stripe_charges", "db_payments", "reconciliation_report"):
            assert len(instance.get_materialized_partitions(dg.AssetKey(key))) == 7
        check_key = dg.AssetCheckKey(REPORT_KEY, CHECK_NAME)
        records = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=50)
        partitions = {r.event.dagster_event.asset_check_evaluation_data.partition for r in records if r.event}
    assert len(partitions) == 7


def test_demo_writes_env_for_dagster_dev_and_data_under_data_demo(demo):
    root, _ = demo
    env = (root / ".env").read_text()
    assert f"DAGSTER_HOME={root}" in env and "STRIPE_API_BASE=http://127.0.0.1:" in env
    assert (root / "data" / "demo" / "app.duckdb").exists()
    assert (root / "data" / "demo" / "stripe_charges.json").exists()
    assert (root / "data" / "recon.duckdb").exists()
