"""Alerts as a deployment sends them: dagster-daemon evaluates the sensors on a default SQLite
DAGSTER_HOME, local Slack and PagerDuty receivers get the messages over HTTP, and a daemon
restart sends nothing twice."""

from __future__ import annotations

import time

import pytest

from recon_dagster.alerts.slack_text import ORANGE, RED
from recon_dagster.testing.deployment import Deployment, build_world, consecutive_days
from recon_dagster_tests.support.receivers import pagerduty_receiver, slack_receiver

# A module-scoped fixture (an expensive world) is built once: every test of this file runs on one
# xdist worker.
pytestmark = pytest.mark.xdist_group("test_alerts_daemon")


INTERVAL = 2  # seconds between sensor ticks (RECON_ALERTS_INTERVAL_SECONDS)
SENSORS = ("slack_discrepancy_alerts", "pagerduty_critical_alerts")
ROUTING_KEY = "R0UT1NGKEYdaemon00000000000000000"


@pytest.fixture(scope="module")
def receivers():
    slack, pagerduty = slack_receiver(), pagerduty_receiver()
    yield slack, pagerduty
    slack.close()
    pagerduty.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, receivers):
    slack, pagerduty = receivers
    # Four demo days: clean, warning, clean, critical (recon_dagster/testing/demo_data.py).
    world = build_world(
        tmp_path_factory.mktemp("daemon"),
        consecutive_days(4),
        per_day=180,
        extra_env={
            "SLACK_WEBHOOK_URL": f"{slack.url}/services/T000/B000/daemontest",
            "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "PAGERDUTY_EVENTS_URL": f"{pagerduty.url}/v2/enqueue",
            "RECON_ALERTS_INTERVAL_SECONDS": str(INTERVAL),
        },
    )
    try:
        with Deployment(world) as dep:
            yield dep
    finally:
        world.stop()


def test_the_daemon_sends_each_alert_once_and_a_restart_sends_nothing_again(deployment, receivers):
    slack, pagerduty = receivers
    _, warn_day, _, critical_day = deployment.world.partitions
    deployment.materialize_at_once([warn_day, critical_day])

    deployment.wait_for(
        lambda: len(slack.bodies) >= 2 and len(pagerduty.bodies) >= 1,
        60,
        "two Slack messages and a trigger",
    )
    colours = {
        b["attachments"][0]["fields"][0]["value"]: b["attachments"][0]["color"]
        for b in slack.bodies
    }
    assert colours == {warn_day: ORANGE, critical_day: RED}
    assert [(b["event_action"], b["dedup_key"]) for b in pagerduty.bodies] == [
        ("trigger", f"billing-reconciliation-{critical_day}")
    ]

    deployment.restart_daemon()
    restarted = time.time()

    def two_more_ticks() -> bool:
        return all(
            sum(t["timestamp"] > restarted for t in deployment.sensor_ticks(s)) >= 2
            for s in SENSORS
        )

    deployment.wait_for(two_more_ticks, 90, "two sensor ticks after the restart")
    failed = [
        (sensor, t["error"])
        for sensor in SENSORS
        for t in deployment.sensor_ticks(sensor)
        if t["status"] == "FAILURE"
    ]
    assert not failed, failed
    print(
        f"daemon test: {len(slack.bodies)} Slack message(s) "
        f"({', '.join(b['attachments'][0]['color'] for b in slack.bodies)}), "
        f"{len(pagerduty.bodies)} PagerDuty event(s) "
        f"({', '.join(b['event_action'] for b in pagerduty.bodies)})"
    )
    assert len(slack.bodies) == 2 and len(pagerduty.bodies) == 1
