"""`daily_reconciliation_celery` on two real Celery workers (`dagster-celery worker start`) over
the local RabbitMQ, with the PostgreSQL instance and store: every step runs in a worker's
process, the steps are spread over both, and the days' reports are what the plain job makes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from recon_dagster.definitions import daily_reconciliation_celery
from recon_dagster.defs.distributed.celery_job import executor_config
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.deployment import build_world, consecutive_days
from recon_dagster_tests.conftest import reachable
from recon_dagster_tests.support.instances import fresh_database, postgres_home

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
    queue = f"recon-test-{uuid.uuid4().hex[:8]}"
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
        # dagster-celery runs `celery` from PATH: this environment's.
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        logs = [(tmp_path / f"w{n}.log").open("w") for n in (1, 2)]
        workers = [
            subprocess.Popen(
                _worker_command(queue, f"w{n}-{queue}"),
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for n, log in enumerate(logs, 1)
        ]
        try:
            _wait_for_workers(tmp_path, workers)
            yield world, instance, queue
        finally:
            for worker in workers:
                os.killpg(worker.pid, signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)
            for log in logs:
                log.close()
            instance.dispose()
            world.stop()


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
