"""The alert resources pointed at local Slack and PagerDuty receivers, with recognisable secrets,
and one sensor tick."""

from __future__ import annotations

import dagster as dg

from recon_dagster.defs.alerts.resources import PagerDutyAlertResource, SlackAlertResource
from recon_dagster_tests.support.receivers import Receiver

DASHBOARD = "http://dagster.example:3000"
ROUTING_KEY = "R0UT1NGKEYsecret0000000000000000"
WEBHOOK_SECRET = "T000/B000/XXXXwebhooksecretXXXX"
BOT_TOKEN = "xoxb-000-secret-bot-token"


def slack_res(rx: Receiver, **kw) -> SlackAlertResource:
    return SlackAlertResource(
        webhook_url=f"{rx.url}/services/{WEBHOOK_SECRET}",
        dashboard_url=DASHBOARD,
        backoff_seconds=0.01,
        **kw,
    )


def pd_res(rx: Receiver, **kw) -> PagerDutyAlertResource:
    return PagerDutyAlertResource(
        routing_key=ROUTING_KEY,
        events_url=f"{rx.url}/v2/enqueue",
        dashboard_url=DASHBOARD,
        backoff_seconds=0.01,
        **kw,
    )


def tick(sensor, instance, cursor, **resources):
    """One sensor evaluation; returns the new cursor."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    data = sensor.evaluate_tick(context)
    assert not data.run_requests
    return data.cursor
