"""Sensors that alert on both domains' checks: `reconciliation_report` /
`discrepancy_within_tolerance` and `payout_reconciliation` / `payouts_reconciled`.

Source: the checks' execution history
(`instance.event_log_storage.get_asset_check_execution_history`, the query behind the UI's check
page). Every event-log storage keeps it in one table with instance-wide ids, including the default
run-sharded SQLite one, where a cross-run `get_event_records` scan refuses a plain cursor and event
storage ids repeat from run to run.

- One row per (run, day), created PLANNED when the run starts and filled in when the check
  yields its evaluation; rows can therefore complete out of id order when runs overlap.
- The cursor is a watermark: every row up to it is final and handled. Rows past it are re-read
  each tick; a row still PLANNED in a live run holds the watermark but not the rows after it.
- At-least-once: the watermark never passes an evaluation whose alert was not delivered.
- Once per evaluation: each delivery is recorded in the instance's key-value store (the one
  Dagster keeps its own cursors in) under (channel, execution id) before the watermark moves,
  so a restarted sensor, or one whose cursor was lost, sends nothing twice.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from recon_dagster.alerts.delivery import DeliveryError
from recon_dagster.alerts.figures import Evaluation, dedup_key
from recon_dagster.alerts.slack_messages import build_message, late_change_moved
from recon_dagster.defs.alerts.resources import PagerDutyAlertResource, SlackAlertResource
from recon_dagster.defs.shared import PAYOUT_CHECK, REPORT_CHECK

# Execution ids are instance-wide (one table for every check), so one watermark serves both.
CHECK_KEYS = (REPORT_CHECK, PAYOUT_CHECK)
PAGE = 100
# Deliveries per tick: a backlog (first start on a year of history) drains over several ticks,
# each well inside the daemon's sensor timeout.
MAX_DELIVERIES_PER_TICK = 50
_LEDGER = "recon_dagster/alerts/v2"
_CURSOR_VERSION = 2


@dataclass(frozen=True)
class Execution:
    """One row of the check's execution history, as far as the sensors care."""

    id: int
    final: bool  # evaluated, or its run ended without evaluating it
    evaluation: Evaluation | None  # None: not evaluated (yet, or ever)


def evaluation_figures(
    execution_id: int, data: dg.AssetCheckEvaluation, timestamp: float = 0.0
) -> Evaluation:
    """A check evaluation as the plain figures alerts are built from."""
    figures = {key: value.value for key, value in (data.metadata or {}).items()}
    return Evaluation(
        execution_id=execution_id,
        timestamp=timestamp,
        date=str(data.partition or figures.get("date") or ""),
        passed=bool(data.passed),
        critical=(not data.passed) and data.severity == dg.AssetCheckSeverity.ERROR,
        description=data.description or "",
        figures=figures,
        check=data.check_name,
    )


def _evaluated(record) -> Evaluation | None:
    """The figures of a history row's evaluation; None when the row holds none yet."""
    data = record.evaluation  # AssetCheckEvaluation when the row holds one, else None
    if not isinstance(data, dg.AssetCheckEvaluation):
        return None
    timestamp = record.event.timestamp if record.event is not None else record.create_timestamp
    return evaluation_figures(record.id, data, timestamp)


def check_executions(instance: dg.DagsterInstance, after: int) -> list[Execution]:
    """Both checks' executions with id > `after`, oldest first.

    Each history is paged newest first (its cursor means "ids below"), so this walks down to
    `after`.
    """
    records = []
    for key in CHECK_KEYS:
        below: int | None = None
        while True:
            page = instance.event_log_storage.get_asset_check_execution_history(
                key, limit=PAGE, cursor=below
            )
            fresh = [r for r in page if r.id > after]
            records += fresh
            if len(page) < PAGE or len(fresh) < len(page):
                break
            below = page[-1].id
    out: list[Execution] = []
    for record in sorted(records, key=lambda r: r.id):
        evaluation = _evaluated(record)
        final = evaluation is not None or _run_ended(instance, record.run_id)
        out.append(Execution(id=record.id, final=final, evaluation=evaluation))
    return out


def _run_ended(instance: dg.DagsterInstance, run_id: str) -> bool:
    """A PLANNED row whose run is over (failed, canceled, or gone) will never be evaluated."""
    run = instance.get_run_by_id(run_id) if run_id else None
    return run is None or run.is_finished


class DeliveryLedger:
    """What each channel has delivered, and PagerDuty's view of each day, in the instance's KV
    store."""

    def __init__(self, instance: dg.DagsterInstance, channel: str):
        self._kv = instance.run_storage
        self._channel = channel

    def _key(self, execution_id: int) -> str:
        return f"{_LEDGER}/{self._channel}/{execution_id}"

    def delivered(self, execution_ids: list[int]) -> set[int]:
        if not execution_ids:
            return set()
        values = self._kv.get_cursor_values({self._key(i) for i in execution_ids})
        return {i for i in execution_ids if values.get(self._key(i))}

    def record(self, execution_id: int, how: str = "sent") -> None:
        self._kv.set_cursor_values({self._key(execution_id): how})

    def day(self, date: str, payouts: bool = False) -> dict:
        """PagerDuty's state for a day's incident: {"open": bool, "at": evaluation timestamp that
        set it}."""
        key = self._day_key(date, payouts)
        raw = self._kv.get_cursor_values({key}).get(key)
        return json.loads(raw) if raw else {"open": False, "at": 0.0}

    def set_day(self, date: str, open_: bool, at: float, payouts: bool = False) -> None:
        self._kv.set_cursor_values(
            {self._day_key(date, payouts): json.dumps({"open": open_, "at": at})}
        )

    @staticmethod
    def _day_key(date: str, payouts: bool) -> str:
        return f"{_LEDGER}/pagerduty-day/{'payouts/' if payouts else ''}{date}"


def parse_cursor(cursor: str | None) -> int:
    """The watermark; an unreadable or older-format cursor counts as lost (the ledger still
    dedups)."""
    try:
        data = json.loads(cursor or "")
        return (
            int(data["after"]) if isinstance(data, dict) and data.get("v") == _CURSOR_VERSION else 0
        )
    except (ValueError, TypeError, KeyError):
        return 0


def format_cursor(after: int) -> str:
    return json.dumps({"v": _CURSOR_VERSION, "after": after})


Handler = Callable[[Evaluation, DeliveryLedger], None]


def run_tick(
    context: dg.SensorEvaluationContext, channel: str, handle: Handler, since: datetime | None
) -> dg.SkipReason:
    """Walk executions past the watermark; `handle(evaluation, ledger)` delivers or raises
    `DeliveryError`."""
    watermark = parse_cursor(context.cursor)
    ledger = DeliveryLedger(context.instance, channel)
    executions = check_executions(context.instance, watermark)
    done = ledger.delivered([e.id for e in executions if e.evaluation is not None])
    sent = quiet = pending = 0
    holding = False  # a row before this one is not final yet: the watermark stays put
    outcome = ""
    for execution in executions:
        evaluation = execution.evaluation
        if evaluation is not None and execution.id not in done:
            if since is not None and evaluation.timestamp < since.timestamp():
                ledger.record(execution.id, "before RECON_ALERTS_SINCE")
                quiet += 1
            elif sent >= MAX_DELIVERIES_PER_TICK:
                outcome = f"; more than {MAX_DELIVERIES_PER_TICK} to send, the rest next tick"
                break
            else:
                try:
                    handle(evaluation, ledger)
                except DeliveryError as exc:
                    context.log.error(
                        f"Failed to send {channel} alert for {evaluation.label} (check execution "
                        f"{execution.id}): {exc}"
                    )
                    outcome = (
                        f"; {channel} alert for {evaluation.label} not delivered, "
                        "retrying next tick"
                    )
                    break
                ledger.record(execution.id)
                sent += 1
        if not execution.final:
            pending += 1
            holding = True
        elif not holding:
            watermark = execution.id
    context.update_cursor(format_cursor(watermark))
    parts = [f"{sent} evaluation(s) handled for {channel}"]
    if quiet:
        parts.append(f"{quiet} older than RECON_ALERTS_SINCE recorded without sending")
    if pending:
        parts.append(f"{pending} check execution(s) still running")
    return dg.SkipReason(", ".join(parts) + outcome)


def _skip(context: dg.SensorEvaluationContext, message: str) -> dg.SkipReason:
    context.log.info(message)
    return dg.SkipReason(message)


def build_alert_sensors(interval_seconds: int, since: datetime | None) -> list[dg.SensorDefinition]:
    """The Slack and PagerDuty sensors; `since` is RECON_ALERTS_SINCE (older evaluations stay
    quiet)."""

    @dg.sensor(
        name="slack_discrepancy_alerts",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="A Slack message for each failed discrepancy_within_tolerance or "
        "payouts_reconciled evaluation (WARN or ERROR).",
    )
    def slack_discrepancy_alerts(
        context: dg.SensorEvaluationContext, slack_alerts: SlackAlertResource
    ):
        if not slack_alerts.is_configured():
            return _skip(
                context,
                "Slack alerts are not configured (set SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN and "
                "SLACK_CHANNEL): skipping",
            )

        def handle(evaluation: Evaluation, ledger: DeliveryLedger) -> None:
            # A passing evaluation is news only when a late change brought the day back.
            if evaluation.passed and not late_change_moved(evaluation):
                return
            attempts = slack_alerts.send(build_message(evaluation, slack_alerts.dashboard_url))
            context.log.info(
                f"Slack alert sent successfully ({evaluation.label}, "
                f"{'critical' if evaluation.critical else 'warning'}, {attempts} attempt(s))"
            )

        return run_tick(context, "Slack", handle, since)

    @dg.sensor(
        name="pagerduty_critical_alerts",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="A PagerDuty incident for each ERROR discrepancy_within_tolerance or "
        "payouts_reconciled evaluation, resolved once the day passes.",
    )
    def pagerduty_critical_alerts(
        context: dg.SensorEvaluationContext, pagerduty_alerts: PagerDutyAlertResource
    ):
        if not pagerduty_alerts.is_configured():
            return _skip(
                context, "PagerDuty alerts are not configured (set PAGERDUTY_ROUTING_KEY): skipping"
            )

        def handle(evaluation: Evaluation, ledger: DeliveryLedger) -> None:
            payouts, key = evaluation.is_payouts, dedup_key(evaluation.date, evaluation.is_payouts)
            day = ledger.day(evaluation.date, payouts)
            if evaluation.timestamp < day["at"]:
                return  # a newer evaluation of this day already decided the incident's state
            if evaluation.critical:
                attempts = pagerduty_alerts.trigger(evaluation)
                ledger.set_day(evaluation.date, True, evaluation.timestamp, payouts)
                context.log.info(
                    f"PagerDuty alert sent successfully (trigger {key}, {attempts} attempt(s))"
                )
            elif evaluation.passed and day["open"]:
                attempts = pagerduty_alerts.resolve(evaluation.date, payouts)
                ledger.set_day(evaluation.date, False, evaluation.timestamp, payouts)
                context.log.info(
                    f"PagerDuty alert sent successfully (resolve {key}, {attempts} attempt(s))"
                )

        return run_tick(context, "PagerDuty", handle, since)

    return [slack_discrepancy_alerts, pagerduty_critical_alerts]
