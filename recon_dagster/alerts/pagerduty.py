"""PagerDuty Events API v2: a trigger for a critical day, a resolve once that day passes.

Why not dagster-pagerduty's `PagerDutyService`: in 0.29.27 it posts through `pypd.EventV2`, whose
events URL is a class attribute (`EventV2.base_url`: changing it would change it process-wide, so
no per-resource URL for a local receiver or a regional endpoint), whose validation demands a
`payload` even for `resolve` (which the API defines without one), and whose request body has no
`links` (so no link to the day in the Dagster UI), no timeout and no retries. This resource is
the minimal replacement: one `requests.post` of the documented v2 body, with bounded retries.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import requests
from pydantic import Field

from recon_dagster.alerts.delivery import (
    DeliveryError,
    is_retryable_status,
    retryable_http,
    with_retries,
)
from recon_dagster.alerts.figures import Evaluation, partition_link, percent

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SOURCE = "recon_dagster"
# PagerDuty refuses events over 512 KB; stay well under it.
MAX_EVENT_BYTES = 500_000
SUMMARY_LIMIT = 1024


def dedup_key(date: str, payouts: bool = False) -> str:
    """One incident per day and domain: `billing-reconciliation-<date>`, `billing-payouts-<date>`."""
    return f"billing-{'payouts' if payouts else 'reconciliation'}-{date}"


def _size(body: dict[str, Any]) -> int:
    return len(json.dumps(body, default=str).encode("utf-8"))


def _fit(body: dict[str, Any], limit: int) -> dict[str, Any]:
    """Shrink `custom_details` until the event is under `limit` bytes: long lists and texts first."""
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
        from recon_dagster.alerts.payout_messages import build_payout_trigger

        return _fit(
            build_payout_trigger(evaluation, routing_key, dashboard_url, SOURCE, SUMMARY_LIMIT),
            max_bytes,
        )
    f = evaluation.figures
    cur = f.get("currency") or ""
    summary = (
        f"Critical billing discrepancy on {evaluation.date}: "
        f"{percent(f.get('gross_discrepancy_percentage'))} gross "
        f"(net {f.get('discrepancy', 'n/a')} {cur}); Stripe {f.get('stripe_total', 'n/a')} vs "
        "database "
        f"{f.get('database_total', 'n/a')} {cur}"
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
            {"href": link, "text": f"Reconciliation report for {evaluation.date} in Dagster"}
        ]
    return _fit(body, max_bytes)


def build_resolve(date: str, routing_key: str, payouts: bool = False) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": dedup_key(date, payouts),
    }


class PagerDutyAlertResource(dg.ConfigurableResource):
    """Events API v2 client. The routing key comes as an `EnvVar` and never appears in logs or
    errors."""

    routing_key: str | None = Field(
        default=None, description="Events API v2 routing key (PAGERDUTY_ROUTING_KEY)."
    )
    events_url: str = Field(
        default=DEFAULT_EVENTS_URL, description="Events endpoint (PAGERDUTY_EVENTS_URL)."
    )
    dashboard_url: str | None = Field(
        default=None, description="Dagster UI address (RECON_DASHBOARD_URL)."
    )
    timeout_seconds: float = 10.0
    max_retries: int = 3
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 30.0

    def is_configured(self) -> bool:
        return bool((self.routing_key or "").strip())

    def trigger(self, evaluation: Evaluation) -> int:
        return self._post(build_trigger(evaluation, self._key(), self.dashboard_url))

    def resolve(self, date: str, payouts: bool = False) -> int:
        return self._post(build_resolve(date, self._key(), payouts))

    def _key(self) -> str:
        if not self.is_configured():
            raise DeliveryError("PagerDuty: not configured")
        return (self.routing_key or "").strip()

    def _post(self, body: dict[str, Any]) -> int:
        """Returns the number of attempts. Raises `DeliveryError` (without the URL or key)."""

        def attempt() -> None:
            response = requests.post(self.events_url, json=body, timeout=self.timeout_seconds)
            if response.status_code in (200, 201, 202):
                return self._accepted(response)
            if is_retryable_status(response.status_code):
                raise retryable_http(response.status_code, response.headers)
            raise DeliveryError(f"PagerDuty: HTTP {response.status_code}{self._reason(response)}")

        return with_retries(
            attempt,
            channel="PagerDuty",
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            max_wait_seconds=self.max_wait_seconds,
        )

    def _accepted(self, response: requests.Response) -> None:
        """A 2xx counts only when PagerDuty says `"status": "success"` (it answers a refused event
        in JSON too)."""
        try:
            status = response.json().get("status")
        except (ValueError, AttributeError):
            status = None
        if status != "success":
            raise DeliveryError(
                f"PagerDuty: HTTP {response.status_code} but the event was not "
                f"accepted{self._reason(response)}"
            )

    def _reason(self, response: requests.Response) -> str:
        """PagerDuty's own words (`status`, `message`, `errors`), short, with the routing key cut
        out."""
        try:
            data = response.json()
        except ValueError:
            return ""
        if not isinstance(data, dict):
            return ""
        words = [str(data.get(k)) for k in ("status", "message") if data.get(k)]
        if isinstance(data.get("errors"), list):
            words += [str(e) for e in data["errors"][:3]]
        text = "; ".join(words).replace(self._key(), "***")[:300]
        return f" ({text})" if text else ""
