"""Sensors that alert on `reconciliation_report` / `discrepancy_within_tolerance` evaluations.

They read ASSET_CHECK_EVALUATION events from the instance's event log after a cursor (the last
storage id handled), so alerts follow the check whatever launched the run.

- At-least-once: the cursor never moves past an evaluation whose alert was not delivered; the
  next tick tries it again.
- Once per evaluation: each delivery is recorded in the instance's key-value store (the one
  Dagster keeps its own cursors in) under (channel, evaluation storage id) before the cursor
  moves, so a restarted sensor, or one whose cursor was lost, sends nothing twice.
"""

from __future__ import annotations

import dagster as dg
from dagster import DagsterEventType, EventRecordsFilter

from ..checks import CHECK_NAME, REPORT_KEY
from .delivery import DeliveryError
from .figures import Evaluation
from .pagerduty import PagerDutyAlertResource, dedup_key
from .slack import SlackAlertResource, build_message

BATCH = 100
_LEDGER = "recon_dagster/alert_deliveries"


class DeliveryLedger:
    """(channel, evaluation storage id) -> delivered, and the days with an open PagerDuty incident."""

    def __init__(self, instance: dg.DagsterInstance):
        self._kv = instance.run_storage

    def _get(self, key: str) -> str | None:
        return self._kv.get_cursor_values({key}).get(key)

    def delivered(self, channel: str, storage_id: int) -> bool:
        return bool(self._get(f"{_LEDGER}/{channel}/{storage_id}"))

    def record(self, channel: str, storage_id: int) -> None:
        self._kv.set_cursor_values({f"{_LEDGER}/{channel}/{storage_id}": "1"})

    def incident_open(self, date: str) -> bool:
        return bool(self._get(f"{_LEDGER}/pagerduty-open/{date}"))

    def set_incident(self, date: str, open_: bool) -> None:
        self._kv.set_cursor_values({f"{_LEDGER}/pagerduty-open/{date}": "1" if open_ else ""})


def check_evaluations(instance: dg.DagsterInstance, after: int, limit: int = BATCH) -> list[tuple[int, Evaluation | None]]:
    """(storage id, evaluation) after `after`, oldest first; None for other checks' evaluations."""
    records = instance.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=after), limit=limit, ascending=True
    )
    out: list[tuple[int, Evaluation | None]] = []
    for record in records:
        data = record.event_log_entry.dagster_event.event_specific_data if record.event_log_entry.dagster_event else None
        ours = isinstance(data, dg.AssetCheckEvaluation) and data.asset_key == REPORT_KEY and data.check_name == CHECK_NAME
        out.append((record.storage_id, Evaluation.from_check(record.storage_id, data) if ours else None))
    return out


def _run(context: dg.SensorEvaluationContext, channel: str, handle) -> dg.SkipReason:
    """Walk evaluations after the cursor; `handle(evaluation)` delivers or raises `DeliveryError`."""
    cursor = int(context.cursor or 0)
    ledger = DeliveryLedger(context.instance)
    handled = 0
    while True:
        batch = check_evaluations(context.instance, cursor)
        for storage_id, evaluation in batch:
            if evaluation is not None and not ledger.delivered(channel, storage_id):
                try:
                    handle(evaluation, ledger)
                except DeliveryError as exc:
                    context.log.error(f"Failed to send {channel} alert for {evaluation.date} (evaluation {storage_id}): {exc}")
                    context.update_cursor(str(cursor))
                    return dg.SkipReason(f"{channel} alert for {evaluation.date} not delivered; retrying next tick")
                ledger.record(channel, storage_id)
                handled += 1
            cursor = storage_id
        if len(batch) < BATCH:
            break
    context.update_cursor(str(cursor))
    return dg.SkipReason(f"{handled} evaluation(s) handled for {channel}")


@dg.sensor(name="slack_discrepancy_alerts", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="A Slack message for each failed discrepancy_within_tolerance evaluation (WARN or ERROR).")  # fmt: skip
def slack_discrepancy_alerts(context: dg.SensorEvaluationContext, slack_alerts: SlackAlertResource):
    if not slack_alerts.is_configured():
        message = "Slack alerts are not configured (set SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN and SLACK_CHANNEL): skipping"
        context.log.info(message)
        return dg.SkipReason(message)

    def handle(evaluation: Evaluation, ledger: DeliveryLedger) -> None:
        if evaluation.passed:
            return
        attempts = slack_alerts.send(build_message(evaluation, slack_alerts.dashboard_url))
        context.log.info(f"Slack alert sent successfully ({evaluation.date}, "
                         f"{'critical' if evaluation.critical else 'warning'}, {attempts} attempt(s))")  # fmt: skip

    return _run(context, "Slack", handle)


@dg.sensor(name="pagerduty_critical_alerts", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="A PagerDuty incident for each ERROR discrepancy_within_tolerance evaluation, resolved once the day passes.")  # fmt: skip
def pagerduty_critical_alerts(context: dg.SensorEvaluationContext, pagerduty_alerts: PagerDutyAlertResource):
    if not pagerduty_alerts.is_configured():
        message = "PagerDuty alerts are not configured (set PAGERDUTY_ROUTING_KEY): skipping"
        context.log.info(message)
        return dg.SkipReason(message)

    def handle(evaluation: Evaluation, ledger: DeliveryLedger) -> None:
        if evaluation.critical:
            attempts = pagerduty_alerts.trigger(evaluation)
            ledger.set_incident(evaluation.date, True)
            context.log.info(f"PagerDuty alert sent successfully (trigger {dedup_key(evaluation.date)}, {attempts} attempt(s))")
        elif evaluation.passed and ledger.incident_open(evaluation.date):
            attempts = pagerduty_alerts.resolve(evaluation.date)
            ledger.set_incident(evaluation.date, False)
            context.log.info(f"PagerDuty alert sent successfully (resolve {dedup_key(evaluation.date)}, {attempts} attempt(s))")

    return _run(context, "PagerDuty", handle)


alert_sensors = [slack_discrepancy_alerts, pagerduty_critical_alerts]
