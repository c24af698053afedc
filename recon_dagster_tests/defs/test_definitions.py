"""The code location as `dagster dev` loads it, and its schedule."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from recon_dagster.definitions import build_defs
from recon_dagster.defs.step_processes import PRELOAD
from recon_dagster.settings import ConfigError, Settings


def load_defs(monkeypatch, tmp_path, **env: str) -> dg.Definitions:
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return build_defs(Settings.from_env())


def test_code_location_has_every_domains_assets_checks_jobs_and_schedules(monkeypatch, tmp_path):
    defs = load_defs(monkeypatch, tmp_path)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "stripe_charges",
        "db_payments",
        "reconciliation_report",
        "stripe_payouts",
        "stripe_payout_transactions",
        "payout_reconciliation",
        "stripe_balance_transactions",
        "balance_rollforward",
        "month_close",
    }
    assert (
        dg.AssetCheckKey(dg.AssetKey("reconciliation_report"), "discrepancy_within_tolerance")
        in graph.asset_check_keys
    )
    assert (
        dg.AssetCheckKey(dg.AssetKey("payout_reconciliation"), "payouts_reconciled")
        in graph.asset_check_keys
    )
    assert (
        defs.resolve_job_def("daily_reconciliation") is not None
        and defs.resolve_job_def("payout_reconciliation_job") is not None
    )
    assert defs.resolve_schedule_def("daily_reconciliation_schedule").cron_schedule == "0 2 * * *"
    assert defs.resolve_schedule_def("payouts_daily").cron_schedule == "0 3 * * *"
    assert {
        dg.AssetCheckKey(dg.AssetKey("balance_rollforward"), "balance_ties_out"),
        dg.AssetCheckKey(dg.AssetKey("month_close"), "month_tied_out"),
    } <= set(graph.asset_check_keys)
    assert defs.resolve_schedule_def("month_close_monthly").cron_schedule == "0 4 1 * *"


def test_workspace_file_loads_through_dagster_cli(tmp_path):
    root = __file__.rsplit("/recon_dagster_tests/", 1)[0]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-w",
            f"{root}/workspace.yaml",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_partitions_and_schedule_follow_recon_timezone(monkeypatch, tmp_path):
    defs = load_defs(
        monkeypatch, tmp_path, RECON_TIMEZONE="America/New_York", RECON_START_DATE="2024-03-01"
    )
    schedule = defs.resolve_schedule_def("daily_reconciliation_schedule")
    assert schedule.execution_timezone == "America/New_York"
    job = defs.resolve_job_def("daily_reconciliation")
    keys = job.partitions_def.get_partition_keys(
        current_time=datetime(2024, 3, 12, 3, tzinfo=ZoneInfo("America/New_York"))
    )
    assert keys[0] == "2024-03-01" and keys[-1] == "2024-03-11"


def test_schedule_at_two_in_the_morning_runs_the_previous_day(monkeypatch, tmp_path):
    defs = load_defs(monkeypatch, tmp_path, RECON_TIMEZONE="Europe/Berlin")
    schedule = defs.resolve_schedule_def("daily_reconciliation_schedule")
    tick = datetime(2024, 6, 15, 2, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    with dg.build_schedule_context(scheduled_execution_time=tick) as context:
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2024-06-14"


def test_bad_setting_stops_loading_with_the_variable_named(monkeypatch, tmp_path):
    monkeypatch.setenv("RECON_CRITICAL_PERCENT", "0.5")
    with pytest.raises(
        ConfigError, match="RECON_CRITICAL_PERCENT.*below BILLING_RECONCILIATION_TOLERANCE_PERCENT"
    ):
        build_defs(Settings.from_env())


def test_alert_sensors_take_their_interval_and_start_from_the_environment(monkeypatch, tmp_path):
    defs = load_defs(
        monkeypatch,
        tmp_path,
        RECON_ALERTS_INTERVAL_SECONDS="7",
        RECON_TIMEZONE="Europe/Berlin",
        RECON_ALERTS_SINCE="2026-11-01",
    )
    for name in ("slack_discrepancy_alerts", "pagerduty_critical_alerts"):
        assert defs.resolve_sensor_def(name).minimum_interval_seconds == 7
    since = Settings.from_env().alerts_since
    assert since == datetime(2026, 11, 1, tzinfo=ZoneInfo("Europe/Berlin"))
    assert (
        Settings.from_env(
            {"RECON_ALERTS_SINCE": "2026-11-01T09:30:00+00:00"}
        ).alerts_since.isoformat()
        == "2026-11-01T09:30:00+00:00"
    )


@pytest.mark.parametrize(
    ("name", "value"), [("RECON_ALERTS_SINCE", "last week"), ("RECON_ALERTS_INTERVAL_SECONDS", "0")]
)
def test_a_bad_alert_setting_is_named(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_payouts_schedule_runs_yesterday_and_the_days_still_within_the_bank_window(
    monkeypatch, tmp_path
):
    defs = load_defs(
        monkeypatch,
        tmp_path,
        RECON_TIMEZONE="Europe/Berlin",
        RECON_BANK_MATCH_DAYS="2",
        RECON_START_DATE="2024-06-12",
    )
    schedule = defs.resolve_schedule_def("payouts_daily")
    tick = datetime(2024, 6, 15, 3, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    with dg.build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2024-06-14", "2024-06-13", "2024-06-12"]
    assert len({r.run_key for r in requests}) == 3


def test_payouts_schedule_never_asks_for_a_day_before_the_first_partition(monkeypatch, tmp_path):
    defs = load_defs(
        monkeypatch, tmp_path, RECON_BANK_MATCH_DAYS="3", RECON_START_DATE="2024-06-14"
    )
    tick = datetime(2024, 6, 15, 3, 0, tzinfo=ZoneInfo("UTC"))
    with dg.build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    ) as context:
        requests = defs.resolve_schedule_def("payouts_daily").evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2024-06-14"]


def test_steps_fork_from_a_forkserver_unless_a_run_config_says_otherwise(monkeypatch, tmp_path):
    job = load_defs(monkeypatch, tmp_path).resolve_job_def("daily_reconciliation")

    def executor(execution: dict) -> dict:
        run_config = {"execution": {"config": execution}} if execution else {}
        [config] = dg.validate_run_config(job, run_config)["execution"].values()
        return config

    assert executor({})["multiprocess"]["start_method"] == {
        "forkserver": {"preload_modules": PRELOAD}
    }
    assert executor({"multiprocess": {"start_method": {"spawn": {}}}})["multiprocess"][
        "start_method"
    ] == {"spawn": {}}
    assert set(executor({"in_process": {}})) == {"in_process"}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_the_forkserver_preloads_modules_that_start_no_thread_and_not_polars():
    """A process is only safe to fork while it has one thread: what the server imports must not
    start any (Polars and PyArrow start allocator threads on import)."""
    imports = "; ".join(f"import {name}" for name in PRELOAD)
    probe = (
        f"import os, sys; {imports}; "
        "print(len(os.listdir('/proc/self/task')), 'polars' in sys.modules, "
        "'pyarrow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False", "False"]


def test_the_forkserver_imports_with_the_gc_off_then_freezes_and_turns_it_on_before_a_step():
    """Its first preload turns the cyclic GC off for the imports; its last moves every object the
    others built to the permanent GC generation, so a forked step's collections leave them (and
    their pages) alone, and turns the GC back on, so every step forked after has it."""
    assert PRELOAD[0] == "recon_dagster.defs.forkserver_start"
    assert PRELOAD[-1] == "recon_dagster.defs.forkserver_ready"
    imports = "; ".join(f"import {name}" for name in PRELOAD[:-1])
    probe = (
        f"import gc; {imports}; off, before = not gc.isenabled(), gc.get_freeze_count(); "
        f"import {PRELOAD[-1]}; print(off, before, gc.get_freeze_count() > 100_000, "
        "gc.isenabled())"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "0", "True", "True"]


def test_loading_the_code_location_freezes_what_it_built_once(tmp_path):
    """`defs`, once built, is in the permanent GC generation with Dagster and the libraries; a
    second access builds nothing and freezes nothing more; the GC is on again afterwards."""
    probe = (
        "import gc; import recon_dagster.definitions as d; before = gc.get_freeze_count(); "
        "defs = d.defs; frozen = gc.get_freeze_count(); "
        "print(before, frozen > 100_000, d.defs is defs, gc.get_freeze_count() == frozen, "
        "any(o is defs for o in gc.get_objects()), gc.isenabled())"
    )
    env = {**os.environ, "STRIPE_API_KEY": "sk_test_probe", "RECON_START_DATE": "2024-01-01"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "True", "True", "True", "False", "True"]
