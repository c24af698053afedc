"""Case 1: `kill -9` of a run's processes while it writes the day's report, on the DuckDB store
and on the PostgreSQL store: the stored report is the previous version or the new one, never
half; re-running adds one version, and no line item twice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.stripe_server import StripeServer
from recon_dagster_tests.chaos.ledger import Entry
from recon_dagster_tests.chaos.scenes import (
    DAY,
    charges,
    materialize,
    payments_table,
    product_env,
    with_dagster_home,
)
from recon_dagster_tests.chaos.secrets import STRIPE_KEY, with_password
from recon_dagster_tests.chaos.servers import new_database
from recon_dagster_tests.chaos.store_checks import day_in_store

COUNT, RECORDED = 4000, 1500  # 2,500 line items to write
# Seconds from the moment the run is seen writing to the store until `kill -9`.
KILL_AFTER = (0.05,)


@pytest.fixture(params=["duckdb", "postgres"])
def store_url(request, case_dir):
    if request.param == "duckdb":
        return f"duckdb:///{case_dir / 'recon.duckdb'}"
    return with_password(new_database(request.getfixturevalue("private_postgres").url))


def _group_has_open(pgid: int, path: Path) -> bool:
    """Does a process of group `pgid` hold `path` open (seen in /proc, from outside)?"""
    target = str(path)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            fds = Path(f"/proc/{pid}/fd")
            if any(os.readlink(fd) == target for fd in fds.iterdir()):
                return True
        except (ProcessLookupError, FileNotFoundError, PermissionError, OSError):
            continue
    return False


def _store_writing(store: ReportStore) -> bool:
    """Is a write transaction open on the PostgreSQL store (pg_stat_activity, from outside)?"""
    with psycopg.connect(store.url, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database() "
            "and backend_xid is not null and pid <> pg_backend_pid()"
        ).fetchone()
    return bool(row and row[0])


def _wait_for_the_write(proc, log: Path, store: ReportStore, timeout: float = 120) -> bool:
    """Block until the run's report step is writing to the store; False if the run ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text(errors="replace") if log.exists() else ""
        if 'Started execution of step "reconciliation_report"' in text:
            writing = (
                _group_has_open(proc.pid, store.path)
                if store.path is not None
                else _store_writing(store)
            )
            if writing:
                return True
        time.sleep(0.005)
    return False


def test_a_run_killed_while_writing_leaves_a_whole_report(store_url, case_dir, ledger, monkeypatch):
    entry = Entry("1. kill -9 mid-write")
    day = charges(DAY, COUNT)
    database = f"duckdb:///{case_dir / 'app.duckdb'}"
    payments_table(database, day[:RECORDED])
    store = ReportStore(store_url)
    with StripeServer(day, api_key=STRIPE_KEY) as server:
        env = with_dagster_home(
            case_dir, product_env(case_dir, server, database, RECON_REPORT_STORE_URL=store_url)
        )
        monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
        first = materialize(case_dir, env, DAY.isoformat(), log="first")
        assert first.returncode == 0, (case_dir / "first.log").read_text()[-3000:]
        entry.runs += 1
        before = day_in_store(store, DAY)
        assert before.versions == [1] and before.partial == 0

        cut = 0
        for n, delay in enumerate(KILL_AFTER):
            proc = materialize(case_dir, env, DAY.isoformat(), log=f"killed_{n}", wait=False)
            assert _wait_for_the_write(proc, case_dir / f"killed_{n}.log", store), "no write seen"
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its step processes
            proc.wait(timeout=30)
            entry.faults += 1
            entry.runs += 1
            after = day_in_store(store, DAY)
            # The previous version or one new whole one; never half of one.
            entry.lost += int(after.versions[: len(before.versions)] != before.versions)
            entry.doubled += max(0, len(after.versions) - len(before.versions) - 1)
            entry.wrong_status += after.partial + after.orphans
            cut += int(after.versions == before.versions)  # killed before its commit
            before = after

        with dg.DagsterInstance.get() as instance:
            started = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        # Dagster's default run launcher cannot see a run's process die: the UI shows it
        # STARTED until someone terminates it (the stored report and check say the truth).
        entry.note = (
            f"{cut} of {len(KILL_AFTER)} kills landed before the write's commit (no version "
            f"added, nothing half-written); {len(started)} killed runs left STARTED in Dagster"
        )
        again = materialize(case_dir, env, DAY.isoformat(), log="rerun")
        entry.runs += 1
        assert again.returncode == 0, (case_dir / "rerun.log").read_text()[-3000:]
        final = day_in_store(store, DAY)
        entry.doubled += max(0, len(final.versions) - len(before.versions) - 1)
        entry.lost += int(len(final.versions) != len(before.versions) + 1)
        entry.wrong_status += final.partial + final.orphans
        latest = store.latest(DAY)
        assert latest is not None and len(latest.missing_in_database) == COUNT - RECORDED
    ledger.write(entry)
    print(f"kill -9 {KILL_AFTER} s into the write: versions {final.versions}")
    assert (entry.lost, entry.doubled, entry.wrong_status) == (0, 0, 0)
