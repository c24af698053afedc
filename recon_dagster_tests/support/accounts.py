"""Driving a many-accounts deployment as users do: the accounts' sensor tick, the late changes'
sensor tick, and the CLI's JSON, in this test's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import dagster as dg

from recon_dagster.definitions import build_resources
from recon_dagster.defs.shared import ACCOUNTS
from recon_dagster.settings import Settings


def add_accounts(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[str]:
    """One tick of `stripe_accounts_sensor`, its partitions added as the daemon adds them."""
    sensor = defs.resolve_sensor_def("stripe_accounts_sensor")
    resources = build_resources(Settings.from_env())
    result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return instance.get_dynamic_partitions(ACCOUNTS.name or "")


def late_changes_tick(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> Callable[[str | None], dg.SensorResult]:
    """A tick of `stripe_late_changes` from a cursor, as the daemon runs it."""
    sensor = defs.resolve_sensor_def("stripe_late_changes")
    resources = build_resources(Settings.from_env())

    def tick(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    return tick


def cli_json(*args: str) -> tuple[int, dict]:
    """`recon-dagster ARGS --json` in a process of its own: its exit code and JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "recon_dagster.cli", *args, "--json"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, json.loads(done.stdout)
