"""Alerts for the payouts domain: `payouts_reconciled` evaluations in a real instance, Slack and
PagerDuty payloads over HTTP to local receivers, a PagerDuty incident of its own per day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import duckdb
import pytest

from recon_dagster.alerts.slack_text import RED
from recon_dagster.definitions import build_defs
from recon_dagster.defs.alerts.sensors import build_alert_sensors
from recon_dagster.testing.stripe_server import (
    make_balance_transaction,
    make_payout,
    payout_transactions,
)
from recon_dagster_tests.support.alert_receivers import pd_res, slack_res, tick

slack_discrepancy_alerts, pagerduty_critical_alerts = build_alert_sensors(60, None)
DAY = date(2024, 7, 10)
SOLD = int(datetime(2024, 7, 9, 12, tzinfo=UTC).timestamp())
ARRIVAL = int(datetime.combine(DAY, time(0), tzinfo=UTC).timestamp())


def payout(status: str) -> tuple[dict, list[dict]]:
    txn = make_balance_transaction(
        "txn_1", 10_000, fee=320, source="ch_1", payout="po_1", created=SOLD
    )
    po = make_payout(
        "po_1",
        9_680,
        arrival_date=ARRIVAL,
        status=status,
        failure_code="account_closed" if status == "failed" else None,
    )
    return po, [txn, payout_transactions(po)]


def run_payouts(world, monkeypatch, instance) -> None:
    settings = world.use(
        monkeypatch,
        RECON_BANK_TABLE="bank_lines",
        RECON_BANK_REFERENCE_COLUMN="memo",
        RECON_START_DATE="2024-07-01",
    )
    job = build_defs(settings).resolve_job_def("payout_reconciliation_job")
    assert job.execute_in_process(instance=instance, partition_key=DAY.isoformat()).success


@pytest.fixture
def payouts_world(world):
    world.sale("ch_1", 10_000, datetime.fromtimestamp(SOLD, UTC))
    with duckdb.connect(str(world.db_path)) as con:
        con.execute(
            "create table bank_lines (id varchar, booked_on date, amount bigint, currency varchar, "
            "memo varchar)"
        )
    return world


def test_a_failed_payout_alerts_under_its_own_incident_which_resolves_once_the_day_passes(
    payouts_world, monkeypatch, any_instance, slack_rx, pd_rx
):
    failed, txns = payout("failed")
    payouts_world.server.add_payouts([failed])
    payouts_world.server.add_balance_transactions(txns)
    run_payouts(payouts_world, monkeypatch, any_instance)
    s_cursor = tick(slack_discrepancy_alerts, any_instance, None, slack_alerts=slack_res(slack_rx))
    p_cursor = tick(pagerduty_critical_alerts, any_instance, None, pagerduty_alerts=pd_res(pd_rx))

    [message] = slack_rx.bodies
    attachment = message["attachments"][0]
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert (attachment["color"], attachment["title"]) == (
        RED,
        f"Payout reconciliation CRITICAL: {DAY}",
    )
    assert fields["Payouts with problems"] == "po_1 96.80 USD (failed, account_closed)"
    assert attachment["footer"] == "recon_dagster · payouts_reconciled"
    [trigger] = pd_rx.bodies
    assert (trigger["event_action"], trigger["dedup_key"]) == ("trigger", f"billing-payouts-{DAY}")
    assert (
        trigger["payload"]["component"] == "payout_reconciliation"
        and trigger["payload"]["custom_details"]["counts"]["failed"] == 1
    )

    paid, _ = payout("paid")  # Stripe retried it, and it arrived
    payouts_world.server.replace_payouts([paid])
    with duckdb.connect(str(payouts_world.db_path)) as con:
        con.execute("insert into bank_lines values ('L1', ?, 9680, 'USD', 'STRIPE PAYOUT')", [DAY])
    run_payouts(payouts_world, monkeypatch, any_instance)
    tick(slack_discrepancy_alerts, any_instance, s_cursor, slack_alerts=slack_res(slack_rx))
    tick(pagerduty_critical_alerts, any_instance, p_cursor, pagerduty_alerts=pd_res(pd_rx))

    assert len(slack_rx.bodies) == 1  # a passing day sends nothing to Slack
    assert [(b["event_action"], b["dedup_key"]) for b in pd_rx.bodies[1:]] == [
        ("resolve", f"billing-payouts-{DAY}")
    ]


def test_charges_and_payouts_of_one_day_are_two_incidents(
    payouts_world, monkeypatch, instance, pd_rx
):
    failed, txns = payout("failed")
    payouts_world.server.add_payouts([failed])
    payouts_world.server.add_balance_transactions(txns)
    payouts_world.sale(
        "ch_gone", 90_000, datetime.combine(DAY, time(9), tzinfo=UTC), record=False
    )  # a critical charges day
    assert payouts_world.materialize(monkeypatch, DAY.isoformat(), instance=instance).success
    run_payouts(payouts_world, monkeypatch, instance)

    tick(pagerduty_critical_alerts, instance, None, pagerduty_alerts=pd_res(pd_rx))

    assert sorted(b["dedup_key"] for b in pd_rx.bodies) == [
        f"billing-payouts-{DAY}",
        f"billing-reconciliation-{DAY}",
    ]
