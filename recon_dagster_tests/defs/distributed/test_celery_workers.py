"""`daily_reconciliation_celery` on two real Celery workers (`dagster-celery worker start`) over
the local RabbitMQ, with the PostgreSQL instance and store: every step runs in a worker's
process, the steps are spread over both, and the days' reports are what the plain job makes; with
Stripe Connect, every account's days too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from recon_dagster.definitions import daily_reconciliation_celery
from recon_dagster.defs.distributed.celery_job import executor_config
from recon_dagster.defs.shared import ACCOUNTS
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.deployment import build_world, consecutive_days
from recon_dagster.testing.stripe_server import StripeServer, make_charge
from recon_dagster_tests.conftest import reachable
from recon_dagster_tests.support.instances import fresh_database, postgres_home
from recon_dagster_tests.support.scenario import API_KEY, at

BROKER = "pyamqp://guest@127.0.0.1:5672//"
BIN = Path(sys.executable).parent


def _connect(url: str) -> None:
    socket.create_connection(("127.0.0.1", 5672), timeout=3).close()


@pytest.fixture
def rabbitmq() -> str:
    """The local RabbitMQ, or a skip (a failure under RECON_REQUIRE_RABBITMQ=1, as CI sets)."""
    return reachable("RabbitMQ", "RECON_TEST_BROKER_URL", BROKER, "RECON_REQUIRE_RABBITMQ",
                     _connect, OSError)  # fmt: skip


@pytest.fixture
def deployment(tmp_path, postgres_url, rabbitmq, monkeypatch):
    """Three days of demo data, the PostgreSQL instance and store, and two workers listening on a
    queue of this test's own (stray workers elsewhere on the broker never take its steps)."""
    with (
        _database(postgres_url, "recon_celery_instance") as instance_db,
        _database(postgres_url, "recon_celery_store") as store_db,
    ):
        world = build_world(
            tmp_path,
            consecutive_days(3),
            per_day=20,
            extra_env={"RECON_REPORT_STORE_URL": store_db},
        )
        instance = postgres_home(tmp_path, instance_db, monkeypatch)
        for name, value in world.env.items():
            if name != "DAGSTER_HOME":
                monkeypatch.setenv(name, value)
        try:
            with _workers(tmp_path) as queue:
                yield world, instance, queue
        finally:
            instance.dispose()
            world.stop()


@contextmanager
def _workers(root: Path) -> Iterator[str]:
    """Two workers started in this process's environment, on a queue of their own: its name."""
    queue = f"recon-test-{uuid.uuid4().hex[:8]}"
    # dagster-celery runs `celery` from PATH: this environment's.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    logs = [(root / f"w{n}.log").open("w") for n in (1, 2)]
    workers = [
        subprocess.Popen(
            _worker_command(queue, f"w{n}-{queue}"),
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for n, log in enumerate(logs, 1)
    ]
    try:
        _wait_for_workers(root, workers)
        yield queue
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
        for log in logs:
            log.close()


CONNECTED = ("acct_1Celery", "acct_2Celery")
DAYS = (date(2024, 7, 10), date(2024, 7, 11))


@pytest.fixture
def connect_deployment(tmp_path, postgres_url, rabbitmq, monkeypatch):
    """A platform with two connected accounts, two days each (one sale a day missing from the
    second account's table), the PostgreSQL instance and store, and two workers."""
    server = StripeServer([], api_key=API_KEY).start()
    db = tmp_path / "app.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table payments (stripe_charge_id varchar, amount bigint, currency varchar, "
            "status varchar, created_at timestamptz, stripe_account varchar)"
        )
        for n, account in enumerate(CONNECTED):
            charges = [
                make_charge(f"ch_{n}_{d}_{i}", 1_000 + i, created=int(at(day, 9 + i).timestamp()))
                for d, day in enumerate(DAYS)
                for i in range(3)
            ]
            server.add_connected_account(account).add_charges(charges)
            for c in charges:
                if not (n == 1 and c["id"].endswith("_2")):
                    con.execute(
                        "insert into payments values (?, ?, 'USD', 'succeeded', "
                        "to_timestamp(?), ?)",
                        [c["id"], c["amount"], c["created"] + 2, account],
                    )
    with (
        _database(postgres_url, "recon_celery_instance") as instance_db,
        _database(postgres_url, "recon_celery_store") as store_db,
    ):
        env = {
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_API_BASE": server.url,
            "RECON_STRIPE_CONNECT": "1",
            "RECON_ACCOUNT_COLUMN": "stripe_account",
            "RECON_DATABASE_URL": f"duckdb:///{db}",
            "RECON_REPORT_STORE_URL": store_db,
            "RECON_START_DATE": "2024-07-01",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        instance = postgres_home(tmp_path, instance_db, monkeypatch)
        instance.add_dynamic_partitions(ACCOUNTS.name or "", list(CONNECTED))
        try:
            with _workers(tmp_path) as queue:
                yield server, instance, queue, store_db
        finally:
            instance.dispose()
            server.stop()


def _worker_command(queue: str, name: str) -> list[str]:
    """`dagster-celery worker start` on `queue`, one step at a time, taking a task only when
    free (`-O fair`), so ready steps spread over the workers."""
    config = Path(__file__).parents[3] / "dagster.celery.yaml"
    start = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"]
    return [
        *start,
        "-y",
        str(config),
        "-q",
        queue,
        "-n",
        name,
        "--",
        "--concurrency=1",
        "-O",
        "fair",
    ]


def _database(postgres_url: str, prefix: str):
    from contextlib import contextmanager

    @contextmanager
    def made():
        made = fresh_database(postgres_url, prefix)
        url = next(made)
        try:
            yield url
        finally:
            next(made, None)

    return made()


def _wait_for_workers(root: Path, workers: list[subprocess.Popen], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    logs: list[str] = []
    while time.monotonic() < deadline:
        logs = [(root / f"w{n}.log").read_text() for n in range(1, len(workers) + 1)]
        if all(" ready." in log for log in logs):
            return
        if any(w.poll() is not None for w in workers):
            break
        time.sleep(0.5)
    raise AssertionError("the Celery workers did not start:\n" + "\n".join(logs))


def test_each_days_steps_run_on_the_celery_workers_spread_over_both(deployment):
    world, instance, queue = deployment
    config = {"execution": {"config": executor_config(BROKER, queue)}}
    job = dg.reconstructable(daily_reconciliation_celery)

    results = []
    for day in world.partitions:
        with dg.execute_job(
            job, instance=instance, run_config=config, tags={"dagster/partition": day}
        ) as result:
            results.append((result.success, result.run_id))

    assert all(success for success, _ in results)
    pids = {
        event.dagster_event.pid
        for _, run_id in results
        for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if event.dagster_event is not None
    }
    assert len(pids) >= 2 and os.getpid() not in pids  # two workers, never this process
    store = ReportStore(world.env["RECON_REPORT_STORE_URL"])
    assert all(store.latest(day) is not None for day in world.days)


def step_pids(instance: dg.DagsterInstance, run_ids: list[str]) -> set[int]:
    return {
        event.dagster_event.pid
        for run_id in run_ids
        for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if event.dagster_event is not None and event.dagster_event.pid is not None
    }


def test_every_accounts_days_run_on_the_celery_workers(connect_deployment):
    server, instance, queue, store_url = connect_deployment
    config = {"execution": {"config": executor_config(BROKER, queue)}}
    job = dg.reconstructable(daily_reconciliation_celery)
    run_ids = []
    for account in CONNECTED:  # the backfill of accounts x days, a run per partition
        for day in DAYS:
            with dg.execute_job(
                job,
                instance=instance,
                run_config=config,
                tags={"dagster/partition": f"{account}|{day}"},
            ) as result:
                assert result.success
                run_ids.append(result.run_id)
    pids = step_pids(instance, run_ids)
    assert len(pids) >= 2 and os.getpid() not in pids
    store = ReportStore(store_url)
    missing = {
        (account, day): store.for_account(account).latest(day).missing_in_database
        for account in CONNECTED
        for day in DAYS
    }
    assert missing == {
        (CONNECTED[0], DAYS[0]): [],
        (CONNECTED[0], DAYS[1]): [],
        (CONNECTED[1], DAYS[0]): ["ch_1_0_2"],
        (CONNECTED[1], DAYS[1]): ["ch_1_1_2"],
    }
    assert {r.account for r in server.requests if r.path == "/v1/charges"} == set(CONNECTED)
