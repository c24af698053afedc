"""PagerDuty Events API v2 bodies: a trigger for a critical day (the charges' figures here, the
payouts' in `payout_messages`), a resolve once that day passes, trimmed under PagerDuty's size
limit."""

import json
from typing import Any

from recon_dagster.alerts.figures import Evaluation, dedup_key, partition_link, percent
from recon_dagster.alerts.payout_messages import build_payout_trigger

SOURCE = "recon_dagster"
# PagerDuty refuses events over 512 KB; stay well under it.
MAX_EVENT_BYTES = 500_000
SUMMARY_LIMIT = 1024


def _size(body: dict[str, Any]) -> int:
    return len(json.dumps(body, default=str).encode("utf-8"))


def _fit(body: dict[str, Any], limit: int) -> dict[str, Any]:
    """Shrink `custom_details` until the event is under `limit` bytes: long lists and texts
    first."""
    details = body["payload"]["custom_details"]
    for keep in (20, 5, 0):
        if _size(body) <= limit:
            return body
        for key, value in list(details.items()):
            if isinstance(value, list) and len(value) > keep:
                details[key] = value[:keep] + [f"... {len(value) - keep} more (see the Dagster UI)"]
            elif isinstance(value, str) and len(value) > 1000 and keep < 20:
                details[key] = value[:1000] + "... (truncated)"
        details["truncated"] = True
    if _size(body) > limit:  # still too big: keep only the headline figures
        kept = (
            "date",
            "grade",
            "currency",
            "stripe_total",
            "database_total",
            "discrepancy",
            "discrepancy_percentage",
            "gross_discrepancy",
            "gross_discrepancy_percentage",
        )
        body["payload"]["custom_details"] = {k: details[k] for k in kept if k in details} | {
            "truncated": True
        }
    return body


def build_trigger(
    evaluation: Evaluation,
    routing_key: str,
    dashboard_url: str | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> dict[str, Any]:
    if evaluation.is_payouts:
        return _fit(
            build_payout_trigger(evaluation, routing_key, dashboard_url, SOURCE, SUMMARY_LIMIT),
            max_bytes,
        )
    f = evaluation.figures
    cur = f.get("currency") or ""
    summary = (
        f"Critical billing discrepancy on {evaluation.label}: "
        f"{percent(f.get('gross_discrepancy_percentage'))} gross "
        f"(net {f.get('discrepancy', 'n/a')} {cur}); Stripe {f.get('stripe_total', 'n/a')} vs "
        f"database {f.get('database_total', 'n/a')} {cur}"
    )[:SUMMARY_LIMIT]
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(evaluation.date),
        "payload": {
            "summary": summary,
            "severity": "critical",
            "source": SOURCE,
            "component": "reconciliation_report",
            "group": "billing",
            "class": "billing_discrepancy",
            "custom_details": {**f, "description": evaluation.description},
        },
    }
    link = partition_link(dashboard_url, evaluation.date)
    if link:
        body["links"] = [
            {"href": link, "text": f"Reconciliation report for {evaluation.label} in Dagster"}
        ]
    return _fit(body, max_bytes)


def build_resolve(date: str, routing_key: str, payouts: bool = False) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": dedup_key(date, payouts),
    }
