"""Slack and PagerDuty alerts: real check evaluations in a real instance, real HTTP to local
receivers."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from recon_dagster.alerts.delivery import (
    DeliveryError,
    Retryable,
    retry_after_seconds,
    with_retries,
)
from recon_dagster.alerts.figures import Evaluation
from recon_dagster.alerts.pagerduty_events import build_trigger
from recon_dagster.alerts.slack_messages import build_message
from recon_dagster.alerts.slack_text import ORANGE, RED, escape
from recon_dagster.defs.alerts.resources import PagerDutyAlertResource, SlackAlertResource
from recon_dagster.defs.alerts.sensors import build_alert_sensors, check_executions
from recon_dagster_tests.support.alert_receivers import (
    BOT_TOKEN,
    DASHBOARD,
    ROUTING_KEY,
    WEBHOOK_SECRET,
    pd_res,
    slack_res,
    tick,
)
from recon_dagster_tests.support.scenario import at

# The two sensors as the code location builds them by default (every minute, the whole backlog).
slack_discrepancy_alerts, pagerduty_critical_alerts = build_alert_sensors(60, None)
OK_DAY, WARN_DAY, CRIT_DAY = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)


@pytest.fixture
def instance(any_instance):
    """Every alert test runs on each instance kind users have: default SQLite and PostgreSQL."""
    return any_instance


def logs(caplog, capfd) -> str:
    """Everything logged: Python logging (all levels) and what Dagster's handlers wrote to
    stdout/stderr."""
    out, err = capfd.readouterr()
    return caplog.text + out + err


def materialize_days(world, monkeypatch, instance, *, run_each_day: bool = False):
    """A clean day, a ~2.9% day (WARN) and a ~16.7% day (ERROR): in one run (each day has its
    own evaluation, as in a backfill's single run), or one run a day."""
    world.sale("ch_ok", 10_000, at(OK_DAY))
    world.sale("ch_w", 10_000, at(WARN_DAY))
    world.sale("ch_w_missing", 300, at(WARN_DAY), record=False)
    world.sale("ch_c", 10_000, at(CRIT_DAY))
    world.sale("ch_c_missing", 2_000, at(CRIT_DAY), record=False)
    world.row("ch_c_ghost", 100, at(CRIT_DAY, 13))
    if run_each_day:
        for day in (OK_DAY, WARN_DAY, CRIT_DAY):
            assert world.materialize(monkeypatch, day.isoformat(), instance=instance).success
        return
    first, last = OK_DAY.isoformat(), CRIT_DAY.isoformat()
    assert world.materialize(monkeypatch, first, last, instance=instance).success


def test_critical_day_gives_one_red_slack_message_and_one_trigger_over_two_ticks(
    world, monkeypatch, instance, slack_rx, pd_rx, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    materialize_days(world, monkeypatch, instance, run_each_day=True)
    s_cursor = p_cursor = None
    for _ in range(2):
        s_cursor = tick(
            slack_discrepancy_alerts, instance, s_cursor, slack_alerts=slack_res(slack_rx)
        )
        p_cursor = tick(
            pagerduty_critical_alerts, instance, p_cursor, pagerduty_alerts=pd_res(pd_rx)
        )

    # Slack: one orange message for the warning day, one red for the critical day, nothing for the
    # clean day.
    assert len(slack_rx.bodies) == 2
    assert all(p == f"/services/{WEBHOOK_SECRET}" for p in slack_rx.paths)
    warn, crit = slack_rx.bodies
    assert warn["attachments"][0]["color"] == ORANGE and crit["attachments"][0]["color"] == RED
    att = crit["attachments"][0]
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert fields["Date"] == CRIT_DAY.isoformat()
    assert fields["Stripe total"] == "120.00 USD"
    assert fields["Database total"] == "101.00 USD"
    assert fields["Discrepancy"].startswith("19.00 USD (15.83%")
    assert fields["Gross discrepancy"].startswith("21.00 USD (17.50%")
    assert fields["Missing in database"] == "1: ch_c_missing"
    assert fields["Missing in Stripe"] == "1: ch_c_ghost"
    assert fields["Amount mismatches"] == "0"
    assert 1 <= len(fields["Top recommendations"].splitlines()) <= 3
    link = f"{DASHBOARD}/assets/reconciliation_report?partition={CRIT_DAY.isoformat()}"
    assert att["title_link"] == link and fields["Dagster UI"] == link
    assert "CRITICAL" in crit["text"] and "WARNING" in warn["text"]
    assert {f["title"]: f["value"] for f in warn["attachments"][0]["fields"]}[
        "Missing in database"
    ] == "1: ch_w_missing"

    # PagerDuty: exactly one trigger, for the critical day.
    assert len(pd_rx.bodies) == 1
    event = pd_rx.bodies[0]
    assert (event["routing_key"], event["event_action"], event["dedup_key"]) == (
        ROUTING_KEY,
        "trigger",
        f"billing-reconciliation-{CRIT_DAY}",
    )
    assert (
        event["payload"]["severity"] == "critical" and event["payload"]["source"] == "recon_dagster"
    )
    assert "2024-03-06" in event["payload"]["summary"]
    details = event["payload"]["custom_details"]
    assert (details["stripe_total"], details["database_total"], details["discrepancy"]) == (
        "120.00",
        "101.00",
        "19.00",
    )
    assert details["missing_in_database"] == ["ch_c_missing"] and details["missing_in_stripe"] == [
        "ch_c_ghost"
    ]
    assert event["links"] == [
        {"href": link, "text": f"Reconciliation report for {CRIT_DAY} in Dagster"}
    ]

    text = logs(caplog, capfd)
    assert "Slack alert sent successfully" in text and "PagerDuty alert sent successfully" in text
    for secret in (ROUTING_KEY, WEBHOOK_SECRET):
        assert secret not in text


def test_fixed_day_is_resolved_and_nothing_is_sent_twice_across_restarts(
    world, monkeypatch, instance, slack_rx, pd_rx
):
    materialize_days(world, monkeypatch, instance)
    p_cursor = tick(pagerduty_critical_alerts, instance, None, pagerduty_alerts=pd_res(pd_rx))
    s_cursor = tick(slack_discrepancy_alerts, instance, None, slack_alerts=slack_res(slack_rx))
    # The missing payments are recorded, the ghost row removed: the day passes when re-materialized.
    world.row("ch_c_missing", 2_000, at(CRIT_DAY, 12, 0, 2))
    import duckdb

    with duckdb.connect(str(world.db_path)) as con:
        con.execute("delete from payments where stripe_charge_id = 'ch_c_ghost'")
    assert world.materialize(monkeypatch, CRIT_DAY.isoformat(), instance=instance).success
    p_cursor = tick(pagerduty_critical_alerts, instance, p_cursor, pagerduty_alerts=pd_res(pd_rx))
    assert [b["event_action"] for b in pd_rx.bodies] == ["trigger", "resolve"]
    assert pd_rx.bodies[1] == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": f"billing-reconciliation-{CRIT_DAY}",
    }
    tick(slack_discrepancy_alerts, instance, s_cursor, slack_alerts=slack_res(slack_rx))
    assert len(slack_rx.bodies) == 2  # a passing evaluation sends no Slack message

    # Restart with the stored cursor, and with the cursor lost: the ledger keeps it to one each.
    for cursor in (p_cursor, None):
        tick(pagerduty_critical_alerts, instance, cursor, pagerduty_alerts=pd_res(pd_rx))
        tick(slack_discrepancy_alerts, instance, cursor, slack_alerts=slack_res(slack_rx))
    assert len(pd_rx.bodies) == 2 and len(slack_rx.bodies) == 2


def test_receiver_failing_twice_gets_the_alert_once_and_the_cursor_waits(
    world, monkeypatch, instance, slack_rx, pd_rx, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    materialize_days(world, monkeypatch, instance)
    # No retries: the failed tick must hold its cursor before the undelivered evaluation.
    slack_rx.fail(500, 1)
    cursor = tick(
        slack_discrepancy_alerts, instance, None, slack_alerts=slack_res(slack_rx, max_retries=0)
    )
    text = logs(caplog, capfd)
    assert slack_rx.bodies == [] and "Failed to send Slack alert" in text
    slack_rx.fail(429, 1)
    cursor = tick(
        slack_discrepancy_alerts, instance, cursor, slack_alerts=slack_res(slack_rx, max_retries=0)
    )
    assert slack_rx.bodies == []
    cursor = tick(
        slack_discrepancy_alerts, instance, cursor, slack_alerts=slack_res(slack_rx, max_retries=0)
    )
    assert [b["attachments"][0]["color"] for b in slack_rx.bodies] == [ORANGE, RED]
    tick(slack_discrepancy_alerts, instance, cursor, slack_alerts=slack_res(slack_rx))
    assert len(slack_rx.bodies) == 2

    # With retries: two failures (500 then 429) are absorbed within one tick.
    pd_rx.fail(500, 1)
    pd_rx.fail(429, 1)
    tick(pagerduty_critical_alerts, instance, None, pagerduty_alerts=pd_res(pd_rx, max_retries=3))
    assert pd_rx.requests == 3 and len(pd_rx.bodies) == 1
    text += logs(caplog, capfd)
    assert "PagerDuty alert sent successfully" in text
    for secret in (ROUTING_KEY, WEBHOOK_SECRET):
        assert secret not in text


def test_unreachable_receiver_is_logged_without_secrets(
    world, monkeypatch, instance, pd_rx, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    materialize_days(world, monkeypatch, instance)
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    res = PagerDutyAlertResource(
        routing_key=ROUTING_KEY,
        events_url=f"{dead}/v2/enqueue/{ROUTING_KEY}",
        max_retries=1,
        backoff_seconds=0.01,
    )
    cursor = tick(pagerduty_critical_alerts, instance, None, pagerduty_alerts=res)
    tick(
        pagerduty_critical_alerts, instance, cursor, pagerduty_alerts=pd_res(pd_rx)
    )  # reachable again
    assert [b["dedup_key"] for b in pd_rx.bodies] == [f"billing-reconciliation-{CRIT_DAY}"]
    hook = SlackAlertResource(
        webhook_url=f"{dead}/services/{WEBHOOK_SECRET}", max_retries=1, backoff_seconds=0.01
    )
    tick(slack_discrepancy_alerts, instance, None, slack_alerts=hook)
    text = logs(caplog, capfd)
    assert "Failed to send PagerDuty alert" in text and "Failed to send Slack alert" in text
    for secret in (ROUTING_KEY, WEBHOOK_SECRET):
        assert secret not in text


def test_nothing_configured_skips(world, monkeypatch, instance, caplog, capfd):
    caplog.set_level(logging.INFO)
    materialize_days(world, monkeypatch, instance)
    context = dg.build_sensor_context(
        instance=instance, resources={"slack_alerts": SlackAlertResource()}
    )
    data = slack_discrepancy_alerts.evaluate_tick(context)
    assert "not configured" in data.skip_message and data.cursor is None
    context = dg.build_sensor_context(
        instance=instance, resources={"pagerduty_alerts": PagerDutyAlertResource()}
    )
    assert "not configured" in pagerduty_critical_alerts.evaluate_tick(context).skip_message
    assert "Slack alerts are not configured" in logs(caplog, capfd)


def test_bot_path_posts_through_dagster_slack(world, monkeypatch, instance, slack_rx):
    materialize_days(world, monkeypatch, instance)
    bot = SlackAlertResource(
        bot_token=BOT_TOKEN,
        channel="#billing-alerts",
        api_base_url=f"{slack_rx.url}/api/",
        webhook_url=f"{slack_rx.url}/services/{WEBHOOK_SECRET}",
        backoff_seconds=0.01,
    )
    tick(slack_discrepancy_alerts, instance, None, slack_alerts=bot)
    assert slack_rx.paths == ["/api/chat.postMessage"] * 2
    assert slack_rx.bodies[1]["channel"] == "#billing-alerts"
    assert slack_rx.bodies[1]["attachments"][0]["color"] == RED


def crafted(critical=True, **figures) -> Evaluation:
    base = {
        "date": "2024-03-06",
        "currency": "USD",
        "stripe_total": "1.00",
        "database_total": "0.00",
        "discrepancy": "1.00",
        "discrepancy_percentage": 100.0,
        "gross_discrepancy": "1.00",
        "gross_discrepancy_percentage": 100.0,
        "counts": {"missing_in_database": 1, "currency_mismatches": 2},
        "missing_in_database": ["ch_1"],
        "missing_in_stripe": [],
        "top_recommendations": ["a", "b", "c", "d"],
    }
    return Evaluation(
        execution_id=1,
        date="2024-03-06",
        passed=False,
        critical=critical,
        description="d",
        figures=base | figures,
    )


def test_data_text_cannot_ping_or_break_formatting():
    assert (
        escape("<!channel> @here <@U123> a&b `x`")
        == "&lt;!channel&gt; @\u200bhere &lt;@\u200bU123&gt; a&amp;b 'x'"
    )
    message = build_message(
        crafted(
            missing_in_database=["ch_<!channel>", "ch_*bold*"],
            top_recommendations=["Ping @channel <http://x|y>"],
        )
    )
    text = json.dumps(message, ensure_ascii=False)
    assert "<!channel>" not in text and "@channel" not in text and "<http" not in text
    fields = {f["title"]: f["value"] for f in message["attachments"][0]["fields"]}
    assert (
        fields["Missing in database"] == "1: ch_&lt;!channel&gt;, ch_*bold*"
    )  # shown verbatim: fields are not formatted
    assert message["attachments"][0]["mrkdwn_in"] == []
    assert fields["Other discrepancies"] == "currency_mismatches: 2"
    top = {f["title"]: f["value"] for f in build_message(crafted())["attachments"][0]["fields"]}[
        "Top recommendations"
    ]
    assert top == "1. a\n2. b\n3. c"  # top 3 only
    assert (
        "title_link" not in build_message(crafted())["attachments"][0]
    )  # no dashboard configured: no link


def test_pagerduty_event_stays_under_the_size_limit():
    huge = crafted(missing_in_database=[f"ch_{i:06d}" for i in range(100_000)], error="x" * 600_000)
    event = build_trigger(huge, ROUTING_KEY, DASHBOARD)
    assert len(json.dumps(event).encode()) < 512 * 1024
    details = event["payload"]["custom_details"]
    assert details["truncated"] is True and details["stripe_total"] == "1.00"
    assert event["dedup_key"] == "billing-reconciliation-2024-03-06"


def test_an_evaluation_behind_a_still_running_run_is_sent_when_that_run_finishes(
    world, monkeypatch, instance, slack_rx
):
    """Runs overlap: the critical day's run is planned first but evaluates last. Neither is lost."""
    materialize_days(world, monkeypatch, instance)
    cursor = tick(slack_discrepancy_alerts, instance, None, slack_alerts=slack_res(slack_rx))
    assert len(slack_rx.bodies) == 2
    world.server.hold()  # the next run waits on Stripe: its check execution stays PLANNED
    slow = world.launch(CRIT_DAY.isoformat())
    deadline = time.monotonic() + 60
    while not (world.server.held() and any(not e.final for e in check_executions(instance, 0))):
        assert slow.poll() is None and time.monotonic() < deadline, slow.stdout.read().decode()[
            -3000:
        ]
        time.sleep(0.2)
    world.server.let_new_requests_by()
    assert world.materialize(
        monkeypatch, WARN_DAY.isoformat(), instance=instance
    ).success  # planned later, done first
    cursor = tick(slack_discrepancy_alerts, instance, cursor, slack_alerts=slack_res(slack_rx))
    assert [b["attachments"][0]["color"] for b in slack_rx.bodies[2:]] == [ORANGE]
    world.server.release()
    assert slow.wait(timeout=120) == 0, slow.stdout.read().decode()[-3000:]
    cursor = tick(slack_discrepancy_alerts, instance, cursor, slack_alerts=slack_res(slack_rx))
    assert [b["attachments"][0]["color"] for b in slack_rx.bodies[2:]] == [ORANGE, RED]
    tick(slack_discrepancy_alerts, instance, cursor, slack_alerts=slack_res(slack_rx))
    assert len(slack_rx.bodies) == 4


def test_evaluations_before_recon_alerts_since_are_recorded_without_being_sent(
    world, monkeypatch, instance, slack_rx, pd_rx, caplog, capfd
):
    materialize_days(world, monkeypatch, instance)
    since = datetime.now(UTC) + timedelta(seconds=1)
    slack, pagerduty = build_alert_sensors(60, since)
    context = dg.build_sensor_context(
        instance=instance, resources={"slack_alerts": slack_res(slack_rx)}
    )
    skipped = slack.evaluate_tick(context)
    assert "3 older than RECON_ALERTS_SINCE" in skipped.skip_message  # the clean day too
    tick(pagerduty, instance, None, pagerduty_alerts=pd_res(pd_rx))
    assert slack_rx.bodies == [] and pd_rx.bodies == []
    while datetime.now(UTC) <= since:
        time.sleep(0.1)
    assert world.materialize(monkeypatch, CRIT_DAY.isoformat(), instance=instance).success
    tick(
        slack, instance, None, slack_alerts=slack_res(slack_rx)
    )  # even with the cursor lost, the old ones stay quiet
    tick(pagerduty, instance, None, pagerduty_alerts=pd_res(pd_rx))
    assert [b["attachments"][0]["color"] for b in slack_rx.bodies] == [RED]
    assert [b["event_action"] for b in pd_rx.bodies] == ["trigger"]


def test_retry_after_from_slack_and_pagerduty_is_waited_for(slack_rx, pd_rx):
    slack_rx.fail(429, 1, retry_after="1")
    pd_rx.fail(429, 1, retry_after="1")
    assert slack_res(slack_rx).send(build_message(crafted())) == 2
    assert pd_res(pd_rx).trigger(crafted()) == 2
    for rx in (slack_rx, pd_rx):
        assert rx.arrivals[1] - rx.arrivals[0] >= 1.0  # the backoff alone would have waited 0.01 s
        assert len(rx.bodies) == 1


def test_a_retry_after_longer_than_the_wait_budget_leaves_the_alert_to_the_next_tick(
    world, monkeypatch, instance, slack_rx
):
    materialize_days(world, monkeypatch, instance)
    slack_rx.fail(429, 1, retry_after="120")
    cursor = tick(
        slack_discrepancy_alerts,
        instance,
        None,
        slack_alerts=slack_res(slack_rx, max_wait_seconds=5),
    )
    assert slack_rx.requests == 1 and slack_rx.bodies == []
    tick(slack_discrepancy_alerts, instance, cursor, slack_alerts=slack_res(slack_rx))
    assert [b["attachments"][0]["color"] for b in slack_rx.bodies] == [ORANGE, RED]


def test_waits_grow_to_retry_after_but_attempts_stay_within_max_retries():
    waits: list[float] = []
    failures = [
        Retryable("HTTP 429", retry_after=3.0),
        Retryable("HTTP 500"),
        Retryable("HTTP 429", retry_after=0.5),
    ]

    def attempt():
        raise failures.pop(0)

    with pytest.raises(DeliveryError, match="HTTP 429 after 3 attempt"):
        with_retries(
            attempt, channel="Slack", max_retries=2, backoff_seconds=1.0, sleep=waits.append
        )
    assert waits == [3.0, 2.0]
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert (
        retry_after_seconds(
            {"Retry-After": "Wed, 25 Nov 2026 12:00:10 GMT"},
            now=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        )
        == 10.0
    )
    assert retry_after_seconds({"Retry-After": "soon"}) is None and retry_after_seconds({}) is None


def test_a_202_from_pagerduty_that_refuses_the_event_is_not_delivered(
    world, monkeypatch, instance, pd_rx, caplog, capfd
):
    caplog.set_level(logging.INFO)
    materialize_days(world, monkeypatch, instance)
    refusal = json.dumps(
        {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": ["'routing_key' is invalid"],
        }
    )
    pd_rx.script.append((202, refusal.encode(), {}))
    cursor = tick(pagerduty_critical_alerts, instance, None, pagerduty_alerts=pd_res(pd_rx))
    text = logs(caplog, capfd)
    assert (
        "Failed to send PagerDuty alert" in text
        and "invalid event" in text
        and ROUTING_KEY not in text
    )
    assert pd_rx.bodies == []
    tick(pagerduty_critical_alerts, instance, cursor, pagerduty_alerts=pd_res(pd_rx))
    assert [b["event_action"] for b in pd_rx.bodies] == ["trigger"]


def test_the_sensors_also_work_on_the_ephemeral_instance_of_tests_and_notebooks(
    world, monkeypatch, slack_rx, pd_rx
):
    # The one ephemeral instance in the suite: it is a kind the sensors must support, not a
    # stand-in.
    with dg.DagsterInstance.ephemeral() as ephemeral:
        materialize_days(world, monkeypatch, ephemeral)
        tick(slack_discrepancy_alerts, ephemeral, None, slack_alerts=slack_res(slack_rx))
        tick(pagerduty_critical_alerts, ephemeral, None, pagerduty_alerts=pd_res(pd_rx))
    assert [b["attachments"][0]["color"] for b in slack_rx.bodies] == [ORANGE, RED]
    assert [b["event_action"] for b in pd_rx.bodies] == ["trigger"]


def test_the_slack_message_shows_disputes_and_rows_left_out():
    message = build_message(
        crafted(
            counts={"disputes": 2, "invalid_rows": 1},
            disputes=[
                {
                    "id": "ch_cb",
                    "amount": "30.00",
                    "currency": "USD",
                    "dispute_id": "dp_1",
                    "dispute_status": "lost",
                },
                {
                    "id": "ch_open",
                    "amount": "5.00",
                    "currency": "USD",
                    "dispute_id": "dp_2",
                    "dispute_status": "needs_response",
                },
            ],
            invalid_rows=[
                {
                    "id": None,
                    "source": "database",
                    "created": "2024-03-06T10:00:00+00:00",
                    "column": "amount",
                    "reason": "NULL in amount column 'amount'",
                }
            ],
        )
    )
    fields = {f["title"]: f["value"] for f in message["attachments"][0]["fields"]}
    assert fields["Disputes"] == "ch_cb lost 30.00 USD, ch_open needs_response 5.00 USD"
    assert fields["Rows left out (invalid)"] == "database (no id): NULL in amount column 'amount'"
    assert "Other discrepancies" not in fields
