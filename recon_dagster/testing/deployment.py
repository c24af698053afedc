"""A local Dagster deployment for tests and benchmarks: the way a user runs the product.

`build_world` writes demo data, serves it from the Stripe-compatible server in this process and
prepares a `DAGSTER_HOME` holding the repository's `dagster.yaml`. `Deployment` starts
`dagster-webserver` and `dagster-daemon run` on the repository's `workspace.yaml` as
subprocesses, and talks to the webserver through its GraphQL API, as the UI does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from recon_dagster.testing.demo_data import DemoDataset, build_demo_dataset
from recon_dagster.testing.stripe_server import StripeServer

REPO = Path(__file__).resolve().parents[2]
DEMO_KEY = "sk_test_recon_demo"  # the demo's key (recon_dagster.demo.DEMO_KEY)
TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
ASSETS = ("stripe_charges", "db_payments", "reconciliation_report")


def materialize_command(partition: str, assets: tuple[str, ...] = ASSETS) -> list[str]:
    """`dagster asset materialize` of one partition of `assets`, as a user types it."""
    return [
        str(Path(sys.executable).with_name("dagster")),
        "asset",
        "materialize",
        "-m",
        "recon_dagster.definitions",
        "--select",
        ",".join(assets),
        "--partition",
        partition,
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """Signal the process group `proc` leads (each process here starts its own session)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


@dataclass
class World:
    root: Path
    days: list[date]
    dataset: DemoDataset
    server: StripeServer
    env: dict[str, str] = field(default_factory=dict)

    @property
    def partitions(self) -> list[str]:
        return [d.isoformat() for d in self.days]

    def stop(self) -> None:
        self.server.stop()


def consecutive_days(count: int, first: date | None = None) -> list[date]:
    first = first or date.today() - timedelta(days=count + 1)
    return [first + timedelta(days=i) for i in range(count)]


def build_world(
    root: Path,
    days: list[date],
    *,
    per_day: int = 180,
    tz: str = "UTC",
    extra_env: dict[str, str] | None = None,
) -> World:
    """Demo data for `days`, the Stripe server up, a fresh DAGSTER_HOME, and the code location's
    env."""
    root = root.resolve()
    dataset = build_demo_dataset(days, tz, per_day=per_day)
    dataset.write(root / "data" / "demo")
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    server = StripeServer(
        dataset.charges, api_key=DEMO_KEY, port=0, disputes=dataset.disputes
    ).start()
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECON_", "STRIPE_", "DAGSTER_", "BILLING_"))
    }
    env = {
        **base,
        "DAGSTER_HOME": str(home),
        "STRIPE_API_KEY": DEMO_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_DATABASE_URL": f"duckdb:///{root}/data/demo/app.duckdb",
        "RECON_PAYMENTS_REFUNDED_COLUMN": "amount_refunded",
        "RECON_REPORT_STORE_URL": f"duckdb:///{root}/recon.duckdb",
        "RECON_TIMEZONE": tz,
        "RECON_START_DATE": days[0].isoformat(),
        **(extra_env or {}),
    }
    return World(root=root, days=list(days), dataset=dataset, server=server, env=env)


class GraphQLError(RuntimeError):
    pass


class Deployment:
    """dagster-webserver and dagster-daemon over `world`, started in `world.root` (logs in
    logs/)."""

    def __init__(
        self, world: World, *, workspace: Path = REPO / "workspace.yaml", daemon: bool = True
    ):
        self.world = world
        self.workspace = workspace
        self.daemon = daemon
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logs = world.root / "logs"
        self._procs: list[tuple[str, subprocess.Popen]] = []

    def _spawn(self, name: str, args: list[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{name}.log", "ab")  # closed with the process; kept on restart
        exe = str(Path(sys.executable).with_name(args[0]))
        proc = subprocess.Popen(
            [exe, *args[1:]],
            cwd=self.world.root,
            env=self.world.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self._procs.append((name, proc))

    def start(self, timeout: float = 120.0) -> Deployment:
        ws = str(self.workspace)
        # Create the instance's SQLite storage once, before two processes race to create it (which
        # can leave alembic_version with two heads, and neither process able to load).
        exe = str(Path(sys.executable).with_name("dagster"))
        subprocess.run(
            [exe, "instance", "migrate"],
            cwd=self.world.root,
            env=self.world.env,
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        self._spawn(
            "webserver", ["dagster-webserver", "-h", "127.0.0.1", "-p", str(self.port), "-w", ws]
        )
        if self.daemon:
            self.start_daemon()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}"
                    )
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        else:
            raise TimeoutError(
                f"dagster-webserver did not answer in {timeout}s:\n{self.log_tail('webserver')}"
            )
        # The code location loads after the server answers: wait until the repository is there.
        while time.monotonic() < deadline:
            data = self.graphql(
                "{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name } } "
                "} }"
            )
            if data["repositoriesOrError"].get("nodes"):
                return
            time.sleep(0.5)
        raise TimeoutError(
            f"the code location did not load in {timeout}s:\n{self.log_tail('webserver')}"
        )

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, only: str | None = None) -> None:
        """Stop every process this object started, or only the one named (`daemon`, `webserver`),
        as a supervisor stops a service: SIGTERM to the process itself, which shuts down the code
        server it started; then SIGTERM to whatever is left in its process group, and SIGKILL
        after 15 s. (Signalling the whole group at once killed the daemon's code server under a
        sensor tick still running, which then failed: "Could not reach user code server".)"""
        chosen = [(n, p) for n, p in reversed(self._procs) if only is None or n == only]
        for _, proc in chosen:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in chosen:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
            _signal_group(proc, signal.SIGTERM)  # anything it left behind
        self._procs = [(n, p) for n, p in self._procs if (n, p) not in chosen]

    def start_daemon(self) -> None:
        """Start dagster-daemon (`Deployment(daemon=False)` left it out, for work to be queued
        before its first loop: the backfill daemon loops every 30 s, and a backfill launched
        just after a loop waits for the next one)."""
        self._spawn("daemon", ["dagster-daemon", "run", "-w", str(self.workspace)])

    def restart_daemon(self) -> None:
        """Stop dagster-daemon and start a new one: cursors and ledgers must survive it."""
        self.stop(only="daemon")
        self.start_daemon()

    def kill_daemon(self) -> None:
        """`kill -9` of the dagster-daemon process alone (what it started lives on), then a new
        one: a daemon that crashed and was restarted by its supervisor."""
        for name, proc in self._procs:
            if name == "daemon":
                proc.kill()
                proc.wait(timeout=15)
        self._procs = [(n, p) for n, p in self._procs if n != "daemon"]
        self.start_daemon()

    def materialize(
        self, partition: str, assets: tuple[str, ...] = ASSETS, timeout: float = 180.0
    ) -> None:
        """`dagster asset materialize` of one day, from a shell, on this deployment's instance."""
        self.materialize_at_once([partition], assets, timeout)

    def materialize_at_once(
        self, partitions: list[str], assets: tuple[str, ...] = ASSETS, timeout: float = 180.0
    ) -> None:
        """`dagster asset materialize` of each day from its own shell, all started together (as
        two users may): the days' runs overlap on the instance and the stores."""
        procs = [
            subprocess.Popen(
                materialize_command(partition, assets),
                cwd=self.world.root,
                env=self.world.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for partition in partitions
        ]
        deadline = time.monotonic() + timeout
        failed = []
        for partition, proc in zip(partitions, procs, strict=True):
            try:
                out, _ = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
                failed.append(f"materializing {partition} took over {timeout}s:\n{out[-4000:]}")
                continue
            if proc.returncode != 0:
                failed.append(
                    f"materializing {partition} failed ({proc.returncode}):\n{out[-4000:]}"
                )
        if failed:
            raise RuntimeError("\n".join(failed))

    def wait_for(self, condition, timeout: float, what: str, poll: float = 0.5) -> None:
        """Poll `condition` until it holds; on timeout fail saying what did not happen, with the
        daemon's log."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} did not happen in {timeout}s\n--- daemon log "
                    f"---\n{self.log_tail('daemon')}"
                )
            time.sleep(poll)

    def _sensor_selector(self, sensor: str) -> dict[str, str]:
        repo = self.repository()
        return {
            "repositoryLocationName": repo["location"]["name"],
            "repositoryName": repo["name"],
            "sensorName": sensor,
        }

    def sensor_ticks(self, sensor: str, limit: int = 50) -> list[dict[str, Any]]:
        """The sensor's latest ticks, newest first, as the UI's sensor page reads them."""
        result = self.graphql(
            SENSOR_TICKS, {"selector": self._sensor_selector(sensor), "limit": limit}
        )["sensorOrError"]
        if result["__typename"] != "Sensor":
            raise GraphQLError(json.dumps(result)[:4000])
        return result["sensorState"]["ticks"]

    def set_sensor_cursor(self, sensor: str, cursor: str | None) -> None:
        """Set the sensor's cursor, as the UI's "Edit cursor" does."""
        result = self.graphql(
            SET_SENSOR_CURSOR, {"selector": self._sensor_selector(sensor), "cursor": cursor}
        )["setSensorCursor"]
        if result["__typename"] != "Sensor":
            raise GraphQLError(json.dumps(result)[:4000])

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- GraphQL
    # -----------------------------------------------------------------------------------

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise GraphQLError(f"HTTP {exc.code}: {exc.read()[:2000]!r}") from None
        if payload.get("errors"):
            raise GraphQLError(json.dumps(payload["errors"])[:4000])
        return payload["data"]

    def repository(self) -> dict[str, Any]:
        data = self.graphql(REPOSITORY_QUERY)
        result = data["repositoriesOrError"]
        if result["__typename"] != "RepositoryConnection":
            raise GraphQLError(json.dumps(result))
        (repo,) = result["nodes"]
        return repo

    def launch_asset_backfill(
        self, partitions: list[str], assets: tuple[str, ...] = ASSETS, title: str | None = None
    ) -> str:
        """What the UI's "Materialize selected" over a partition range sends."""
        params = {"assetSelection": [{"path": [a]} for a in assets], "partitionNames": partitions}
        if title:
            params["title"] = title
        result = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(json.dumps(result)[:4000])
        return result["backfillId"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        result = self.graphql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        if result["__typename"] != "PartitionBackfill":
            raise GraphQLError(json.dumps(result)[:4000])
        return result

    def wait_backfill(self, backfill_id: str, timeout: float, poll: float = 1.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.backfill(backfill_id)
            if state["status"] in TERMINAL_BACKFILL:
                return state
            for name, proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}"
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"backfill {backfill_id} still {state['status']} after {timeout}s: "
                    f"{json.dumps(state)[:2000]}\n--- daemon log ---\n{self.log_tail('daemon')}"
                )
            time.sleep(poll)

    def check_executions(
        self, asset: str, check_name: str, partition: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        variables: dict[str, Any] = {"key": {"path": [asset]}, "name": check_name, "limit": limit}
        if partition is not None:
            variables["partition"] = partition
        return self.graphql(CHECK_EXECUTIONS, variables)["assetCheckExecutions"]


REPOSITORY_QUERY = """
query Repository {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        location { name }
        assetNodes {
          assetKey { path }
          isPartitioned
          assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
        }
        jobs { name }
        schedules { name cronSchedule executionTimezone pipelineName scheduleState { status } }
        sensors { name sensorType sensorState { status } }
      }
    }
    ... on PythonError { message stack }
  }
}
"""

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id status numPartitions timestamp endTimestamp
      runs { id status startTime endTime tags { key value } }
      error { message stack }
    }
    ... on Error { message }
  }
}
"""

SENSOR_TICKS = """
query SensorTicks($selector: SensorSelector!, $limit: Int!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: $limit) {
      id status timestamp skipReason runKeys runIds error { message } } } }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""

SET_SENSOR_CURSOR = """
mutation SetSensorCursor($selector: SensorSelector!, $cursor: String) {
  setSensorCursor(sensorSelector: $selector, cursor: $cursor) {
    __typename
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""

CHECK_EXECUTIONS = """
query Checks($key: AssetKeyInput!, $name: String!, $partition: String, $limit: Int!) {
  assetCheckExecutions(assetKey: $key, checkName: $name, partition: $partition, limit: $limit) {
    id runId status partition
    evaluation { partition success severity description }
  }
}
"""
