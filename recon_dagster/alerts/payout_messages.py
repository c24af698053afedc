"""Slack and PagerDuty bodies for a failed `payouts_reconciled` evaluation: the day's payout
figures, the problem payouts and the unclaimed deposits (escaped like every data text)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from recon_dagster.alerts.figures import Evaluation, as_dict, as_list, dedup_key, partition_link
from recon_dagster.alerts.slack_text import (
    IDS_SHOWN,
    ORANGE,
    RED,
    escape,
    escape_mrkdwn,
    late_events,
    message_body,
)


def _payout_line(p: dict[str, Any]) -> str:
    difference = p.get("difference")
    extra = (
        f", difference {difference}"
        if difference is not None and Decimal(str(difference)) != 0
        else ""
    )
    failure = f", {p.get('failure_code')}" if p.get("failure_code") else ""
    problems = ", ".join(p.get("problems") or [])
    return f"{p.get('id')} {p.get('amount')} {p.get('currency')} ({problems}{extra}{failure})"


def build_payout_message(
    evaluation: Evaluation, dashboard_url: str | None = None
) -> dict[str, Any]:
    f = evaluation.figures
    counts = as_dict(f.get("counts")) or {}
    level = "CRITICAL" if evaluation.critical else "WARNING"
    title = f"Payout reconciliation {level}: {escape(evaluation.label)}"
    link = partition_link(dashboard_url, evaluation.date, "payout_reconciliation")
    fields = [
        {"title": "Arrival date", "value": escape(evaluation.day), "short": True},
        {"title": "Payouts", "value": str(int(counts.get("payouts", 0))), "short": True},
    ]
    problems = ", ".join(
        f"{escape(k)}: {int(v)}"
        for k, v in counts.items()
        if k not in ("payouts", "awaiting_bank") and v
    )
    if problems:
        fields.append({"title": "Problems", "value": problems, "short": False})
    payouts = [p for p in as_list(f.get("problem_payouts")) if isinstance(p, dict)]
    if payouts:
        fields.append(
            {
                "title": "Payouts with problems",
                "short": False,
                "value": "\n".join(escape(_payout_line(p)) for p in payouts[:IDS_SHOWN]),
            }
        )
    deposits = [d for d in as_list(f.get("deposits_without_payout")) if isinstance(d, dict)]
    if deposits:
        fields.append(
            {
                "title": "Deposits without a payout",
                "short": False,
                "value": "\n".join(
                    escape(
                        f"{d.get('id')} {d.get('amount')} {d.get('currency')} on {d.get('date')}"
                    )
                    for d in deposits[:IDS_SHOWN]
                ),
            }
        )
    if not f.get("bank_checked", True):
        fields.append(
            {"title": "Bank", "value": "not checked (RECON_BANK_TABLE is not set)", "short": False}
        )
    late = as_dict(f.get("late_change"))
    if late:
        fields.append(
            {
                "title": "Late change",
                "short": False,
                "value": "Stripe changed these payouts after the day was reconciled: "
                + late_events(late),
            }
        )
    if f.get("source_note"):
        fields.append({"title": "Stripe mirror", "value": escape(f["source_note"]), "short": False})
    if f.get("source_mismatches"):
        fields.append(
            {
                "title": "Mirror disagrees with the API",
                "short": False,
                "value": ", ".join(escape(i) for i in f["source_mismatches"][:IDS_SHOWN]),
            }
        )
    if f.get("error"):
        fields.append({"title": "Error", "value": escape(f["error"]), "short": False})
    return message_body(
        title=title,
        headline=f"Payout reconciliation {level}: {escape_mrkdwn(evaluation.label)}",
        description=evaluation.description,
        fields=fields,
        footer="recon_dagster · payouts_reconciled",
        colour=RED if evaluation.critical else ORANGE,
        icon=":rotating_light:" if evaluation.critical else ":warning:",
        link=link,
        late=bool(late),
    )


def build_payout_trigger(
    evaluation: Evaluation,
    routing_key: str,
    dashboard_url: str | None,
    source: str,
    summary_limit: int,
) -> dict[str, Any]:
    f = evaluation.figures
    counts = as_dict(f.get("counts")) or {}
    found = ", ".join(
        f"{k} {int(v)}" for k, v in counts.items() if k not in ("payouts", "awaiting_bank") and v
    )
    summary = (
        f"Payout reconciliation failed for {evaluation.label}: {found or evaluation.description}"[
            :summary_limit
        ]
    )
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(evaluation.date, payouts=True),
        "payload": {
            "summary": summary,
            "severity": "critical",
            "source": source,
            "component": "payout_reconciliation",
            "group": "billing",
            "class": "payout_discrepancy",
            "custom_details": {**f, "description": evaluation.description},
        },
    }
    link = partition_link(dashboard_url, evaluation.date, "payout_reconciliation")
    if link:
        body["links"] = [
            {"href": link, "text": f"Payout reconciliation for {evaluation.label} in Dagster"}
        ]
    return body
