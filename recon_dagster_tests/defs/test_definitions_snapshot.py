"""What users see of the code location, snapshotted: asset keys (group, deps, partitions), checks,
jobs, schedules, sensors and resources. An accidental change to any of them fails here; an
intended one is recorded with `RECON_UPDATE_SNAPSHOT=1 python -m pytest <this file>`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from recon_dagster.definitions import build_defs
from recon_dagster.settings import Settings

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
ENV = {"RECON_TIMEZONE": "Europe/Berlin", "RECON_START_DATE": "2024-01-01"}


def partitions(definition: Any) -> dict[str, str] | None:
    days = definition.partitions_def if definition is not None else None
    if days is None:
        return None
    assert isinstance(days, dg.TimeWindowPartitionsDefinition)
    return {"cron": days.cron_schedule, "timezone": days.timezone, "start": str(days.start.date())}


def snapshot(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "partitions": partitions(node),
            "backfill": str(node.backfill_policy),
        }
    checks = {
        f"{k.asset_key.to_user_string()}:{k.name}": {
            "partitions": partitions(graph.get(k)),
        }
        for k in sorted(
            graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)
        )
    }
    jobs = {
        job.name: {"partitions": partitions(job)}
        for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name)
        if not job.name.startswith("__")
    }
    repository = defs.get_repository_def()
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "job": s.job_name,
            "default": str(s.default_status),
        }
        for s in sorted(repository.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        s.name: {
            "interval": s.minimum_interval_seconds,
            "jobs": sorted(j.name for j in s.targets and [t.job_def for t in s.targets] or []),
            "default": str(s.default_status),
        }
        for s in sorted(repository.sensor_defs, key=lambda s: s.name)
    }
    return {
        "assets": assets,
        "checks": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": sorted(defs.resources or {}),
    }


def test_the_code_location_is_what_the_snapshot_says(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    current = snapshot(build_defs(Settings.from_env(ENV)))
    if os.environ.get("RECON_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())
