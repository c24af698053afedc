"""Through the real server: dagster-webserver and dagster-daemon on the repository's workspace.yaml.

A user's deployment in miniature: a DAGSTER_HOME with the repository's dagster.yaml, the
Stripe-compatible server in this process, and everything else done through GraphQL as the UI
does it: find the assets, the check, the schedule and the sensor, launch a 3-day backfill of the
three assets, wait for the daemon to run it, and read a check result for each day.
"""

from __future__ import annotations

import pytest

from recon_dagster.defs.charges.checks import CHECK_NAME
from recon_dagster.testing.deployment import (
    ASSETS,
    Deployment,
    build_world,
    consecutive_days,
)

# A module-scoped fixture (an expensive world) is built once: every test of this file runs on one
# xdist worker.
pytestmark = pytest.mark.xdist_group("test_webserver_graphql")


BACKFILL_TIMEOUT = 240


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    world = build_world(tmp_path_factory.mktemp("server"), consecutive_days(3), per_day=40)
    try:
        # The daemon starts once the backfill is queued (`backfill`), so that its first loop takes
        # it up rather than one 30 s later.
        with Deployment(world, daemon=False) as dep:
            yield dep
    finally:
        world.stop()


@pytest.fixture(scope="module")
def backfill(deployment):
    backfill_id = deployment.launch_asset_backfill(
        deployment.world.partitions, title="graphql test"
    )
    deployment.start_daemon()
    return deployment.wait_backfill(backfill_id, timeout=BACKFILL_TIMEOUT)


def test_graphql_lists_the_assets_the_check_the_schedule_and_the_sensor(deployment):
    repo = deployment.repository()
    assert repo["location"]["name"] == "recon_dagster"
    nodes = {"/".join(n["assetKey"]["path"]): n for n in repo["assetNodes"]}
    assert set(ASSETS) <= set(nodes)
    assert all(nodes[a]["isPartitioned"] for a in ASSETS)
    checks = nodes["reconciliation_report"]["assetChecksOrError"]
    assert checks["__typename"] == "AssetChecks"
    assert [c["name"] for c in checks["checks"]] == [CHECK_NAME]
    schedules = {s["name"]: s for s in repo["schedules"]}
    schedule = schedules["daily_reconciliation_schedule"]
    assert schedule["pipelineName"] == "daily_reconciliation"
    assert schedule["cronSchedule"] == "0 2 * * *"
    assert schedule["scheduleState"]["status"] == "RUNNING"
    assert repo["sensors"], "expected the refresh sensor"
    assert all(s["sensorState"]["status"] == "RUNNING" for s in repo["sensors"])


def test_a_three_day_backfill_launched_through_graphql_completes(deployment, backfill):
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (
        backfill,
        deployment.log_tail("daemon"),
    )
    assert backfill["numPartitions"] == 3
    assert backfill["runs"] and all(r["status"] == "SUCCESS" for r in backfill["runs"])
    # DAYS_PER_RUN days per run: the three days run as one run over the range.
    assert len(backfill["runs"]) == 1
    tags = {t["key"]: t["value"] for t in backfill["runs"][0]["tags"]}
    assert (
        tags["dagster/asset_partition_range_start"],
        tags["dagster/asset_partition_range_end"],
    ) == (
        deployment.world.partitions[0],
        deployment.world.partitions[-1],
    )


def test_graphql_reads_one_check_result_per_day(deployment, backfill):
    run_ids = {r["id"] for r in backfill["runs"]}
    for partition in deployment.world.partitions:
        executions = deployment.check_executions("reconciliation_report", CHECK_NAME, partition)
        assert len(executions) == 1, (partition, executions)
        (execution,) = executions
        assert execution["runId"] in run_ids
        assert execution["partition"] == execution["evaluation"]["partition"] == partition
        assert execution["status"] in ("SUCCEEDED", "FAILED")
        assert execution["evaluation"]["success"] == (execution["status"] == "SUCCEEDED")
        assert execution["evaluation"]["description"]
    everything = deployment.check_executions("reconciliation_report", CHECK_NAME)
    assert sorted(e["partition"] for e in everything) == deployment.world.partitions
    # The demo's day profiles cycle clean, warning, clean: one day above the tolerance.
    verdicts = [
        deployment.check_executions("reconciliation_report", CHECK_NAME, p)[0]["evaluation"][
            "success"
        ]
        for p in deployment.world.partitions
    ]
    assert verdicts == [True, False, True]
