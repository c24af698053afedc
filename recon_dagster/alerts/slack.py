"""The Slack message for a failed check evaluation, and its delivery.

Two ways to send: an incoming webhook (`SLACK_WEBHOOK_URL`, slack_sdk's `WebhookClient`) or, when
`SLACK_BOT_TOKEN` and `SLACK_CHANNEL` are set, a bot through dagster-slack's `SlackResource`.
`SlackResource` takes only a token; its `WebClient` gets `api_base_url` set afterwards (for a
local receiver in tests, or a proxy).

Data-derived text (ids, recommendations, error messages) goes into attachment fields that Slack
does not format (no `mrkdwn_in`), escaped per Slack's rules (`&`, `<`, `>`), with `@` followed by
a zero-width space: it cannot ping `@channel`/`<!here>`/`<@U…>` or open a link.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_slack import SlackResource
from pydantic import Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from recon_dagster.alerts.delivery import (
    QUIET_SDK_LOGGER,
    DeliveryError,
    is_retryable_status,
    retryable_http,
    with_retries,
)
from recon_dagster.alerts.figures import Evaluation, partition_link, percent

ORANGE = "#FFA500"
RED = "#FF0000"
GREEN = "#2EB67D"  # a late change that brought a day back within the tolerance
RECOMMENDATIONS_SHOWN = 3
IDS_SHOWN = 5
_MAIN_CLASSES = ("missing_in_database", "missing_in_stripe", "amount_mismatches")


def escape(text: Any) -> str:
    """Data text made inert for Slack: control characters escaped, mentions and markup defused."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = out.replace("@", "@\u200b")  # '@channel', '@here', '@someone' never ping
    return out.replace("`", "'")


def escape_mrkdwn(text: Any) -> str:
    """`escape`, plus `*`, `_`, `~` broken up: for the message's top-level text, which Slack
    formats.

    Fields are sent unformatted (`mrkdwn_in` empty), so ids there keep their underscores intact.
    """
    out = escape(text)
    for mark in ("*", "_", "~"):
        out = out.replace(mark, mark + "\u200b")
    return out


def _ids(values: Any, count: int) -> str:
    ids = list(values) if isinstance(values, list) else []
    shown = ", ".join(escape(i) for i in ids[:IDS_SHOWN])
    more = f" (+{count - len(ids[:IDS_SHOWN])} more)" if count > len(ids[:IDS_SHOWN]) else ""
    return f"{count}" + (f": {shown}{more}" if shown else "")


def _listed(
    f: dict[str, Any], counts: dict, key: str, title: str, sep: str, text
) -> list[dict[str, Any]]:
    """A field listing the first items of class `key` (escaped), or nothing when there are none."""
    items = (
        [i for i in f.get(key) or [] if isinstance(i, dict)] if isinstance(f.get(key), list) else []
    )
    if not items:
        return []
    more = int(counts.get(key, len(items))) - min(len(items), IDS_SHOWN)
    shown = sep.join(escape(text(i)) for i in items[:IDS_SHOWN])
    return [
        {"title": title, "short": False, "value": shown + (f" (+{more} more)" if more > 0 else "")}
    ]


def build_message(evaluation: Evaluation, dashboard_url: str | None = None) -> dict[str, Any]:
    """The webhook / chat.postMessage body for one failed evaluation."""
    if evaluation.is_payouts:
        from recon_dagster.alerts.payout_messages import build_payout_message

        return build_payout_message(evaluation, dashboard_url)
    f = evaluation.figures
    cur = escape(f.get("currency") or "")
    date = escape(evaluation.date)
    level = "CRITICAL" if evaluation.critical else "RESOLVED" if evaluation.passed else "WARNING"
    counts = f.get("counts") if isinstance(f.get("counts"), dict) else {}
    link = partition_link(dashboard_url, evaluation.date)
    title = f"Billing discrepancy {level}: {date}"
    fields = [
        {"title": "Date", "value": date, "short": True},
        {
            "title": "Stripe total",
            "value": f"{escape(f.get('stripe_total', 'n/a'))} {cur}".strip(),
            "short": True,
        },
        {
            "title": "Database total",
            "value": f"{escape(f.get('database_total', 'n/a'))} {cur}".strip(),
            "short": True,
        },
        {
            "title": "Discrepancy",
            "value": f"{escape(f.get('discrepancy', 'n/a'))} {cur} "
            f"({percent(f.get('discrepancy_percentage'))})".replace("  ", " "),
            "short": True,
        },
        {
            "title": "Gross discrepancy",
            "value": f"{escape(f.get('gross_discrepancy', 'n/a'))} {cur} "
            f"({percent(f.get('gross_discrepancy_percentage'))})".replace("  ", " "),
            "short": True,
        },
        {
            "title": "Missing in database",
            "value": _ids(f.get("missing_in_database"), int(counts.get("missing_in_database", 0))),
            "short": False,
        },
        {
            "title": "Missing in Stripe",
            "value": _ids(f.get("missing_in_stripe"), int(counts.get("missing_in_stripe", 0))),
            "short": False,
        },
        {
            "title": "Amount mismatches",
            "value": str(int(counts.get("amount_mismatches", 0))),
            "short": True,
        },
    ]
    fields += _listed(
        f,
        counts,
        "disputes",
        "Disputes",
        ", ",
        lambda d: f"{d.get('id')} {d.get('dispute_status')} {d.get('amount')} {d.get('currency')}",
    )
    fields += _listed(
        f,
        counts,
        "invalid_rows",
        "Rows left out (invalid)",
        "; ",
        lambda r: f"{r.get('source')} {r.get('id') or '(no id)'}: {r.get('reason')}",
    )
    others = {
        k: int(v)
        for k, v in counts.items()
        if k not in (*_MAIN_CLASSES, "disputes", "invalid_rows") and v
    }
    if others:
        fields.append(
            {
                "title": "Other discrepancies",
                "value": ", ".join(f"{escape(k)}: {v}" for k, v in sorted(others.items())),
                "short": False,
            }
        )
    recommendations = (
        f.get("top_recommendations") if isinstance(f.get("top_recommendations"), list) else []
    )
    if recommendations:
        fields.append(
            {
                "title": "Top recommendations",
                "short": False,
                "value": "\n".join(
                    f"{n}. {escape(r)}"
                    for n, r in enumerate(recommendations[:RECOMMENDATIONS_SHOWN], 1)
                ),
            }
        )
    if f.get("error"):
        fields.append({"title": "Error", "value": escape(f["error"]), "short": False})
    late = f.get("late_change") if isinstance(f.get("late_change"), dict) else None
    if late:
        events = ", ".join(escape(e) for e in (late.get("events") or [])[:IDS_SHOWN])
        fields.append(
            {
                "title": "Late change",
                "short": False,
                "value": "Stripe changed this day after it was reconciled: "
                f"{escape(late.get('previous_grade'))} -> "
                f"{escape(late.get('grade'))}; {int(late.get('event_count') or 0)} event(s) "
                f"({escape(late.get('event_types') or '')}): {events}",
            }
        )
    if f.get("source_note"):
        fields.append({"title": "Stripe source", "value": escape(f["source_note"]), "short": False})
    if f.get("source_mismatches"):
        fields.append(
            {
                "title": "Mirror disagrees with the API",
                "short": False,
                "value": _ids(f.get("source_mismatches"), len(f.get("source_mismatches") or [])),
            }
        )
    if link:
        fields.append({"title": "Dagster UI", "value": link, "short": False})
    attachment: dict[str, Any] = {
        "color": RED if evaluation.critical else GREEN if evaluation.passed else ORANGE,
        "fallback": f"{title}: {escape(evaluation.description)}",
        "title": title,
        "text": escape(evaluation.description),
        "fields": fields,
        "footer": "recon_dagster · discrepancy_within_tolerance",
        "mrkdwn_in": [],
    }
    if link:
        attachment["title_link"] = link
    headline = f"Billing discrepancy {level}: {escape_mrkdwn(evaluation.date)}"
    icon = (
        ":rotating_light:"
        if evaluation.critical
        else ":white_check_mark:"
        if evaluation.passed
        else ":warning:"
    )
    return {
        "text": f"{icon} {'Late change: ' if late else ''}{headline}",
        "attachments": [attachment],
    }


def late_change_moved(evaluation: Evaluation) -> bool:
    """A late change that moved the day's check result (pass, warn, critical, either way)."""
    late = evaluation.figures.get("late_change")
    return isinstance(late, dict) and late.get("previous_grade") != late.get("grade")


_SLACK_API = "https://slack.com/api/"


class _BotSlackResource(SlackResource):
    """dagster-slack's `SlackResource` (0.29.27 takes only `token`, and its `WebClient` always
    talks to slack.com), extended with the API base URL, a timeout, a quiet logger (slack_sdk logs
    request details at DEBUG) and no built-in retries (ours are uniform across channels)."""

    base_url: str = _SLACK_API
    timeout_seconds: float = 10.0

    def get_client(self) -> WebClient:
        return WebClient(
            self.token,
            base_url=self.base_url.rstrip("/") + "/",
            timeout=int(max(1, self.timeout_seconds)),
            logger=QUIET_SDK_LOGGER,
            retry_handlers=[],
        )


class SlackAlertResource(dg.ConfigurableResource):
    """Where Slack alerts go. Secrets come as `EnvVar`s and never appear in logs or errors."""

    webhook_url: str | None = Field(
        default=None, description="Incoming webhook URL (SLACK_WEBHOOK_URL)."
    )
    bot_token: str | None = Field(
        default=None, description="Bot token (SLACK_BOT_TOKEN), used with channel."
    )
    channel: str | None = Field(default=None, description="Channel for the bot (SLACK_CHANNEL).")
    api_base_url: str | None = Field(
        default=None, description="Slack Web API base URL; Slack's by default."
    )
    dashboard_url: str | None = Field(
        default=None, description="Dagster UI address (RECON_DASHBOARD_URL)."
    )
    timeout_seconds: float = 10.0
    max_retries: int = 3
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 30.0

    def uses_bot(self) -> bool:
        return bool((self.bot_token or "").strip() and (self.channel or "").strip())

    def is_configured(self) -> bool:
        return self.uses_bot() or bool((self.webhook_url or "").strip())

    def send(self, message: dict[str, Any]) -> int:
        """Deliver `message`; returns the number of attempts. Raises `DeliveryError`."""
        if self.uses_bot():
            client = _BotSlackResource(
                token=self.bot_token,
                base_url=self.api_base_url or _SLACK_API,
                timeout_seconds=self.timeout_seconds,
            ).get_client()

            def attempt() -> None:
                try:
                    client.chat_postMessage(
                        channel=self.channel,
                        text=message["text"],
                        attachments=message["attachments"],
                    )
                except SlackApiError as exc:
                    status = getattr(exc.response, "status_code", 0) or 0
                    if is_retryable_status(status):
                        raise retryable_http(
                            status, getattr(exc.response, "headers", None)
                        ) from None
                    error = exc.response.get("error") if hasattr(exc.response, "get") else None
                    raise DeliveryError(f"Slack: HTTP {status} {error or ''}".strip()) from None

        elif self.webhook_url:
            client = WebhookClient(
                self.webhook_url,
                timeout=int(max(1, self.timeout_seconds)),
                logger=QUIET_SDK_LOGGER,
                retry_handlers=[],
            )

            def attempt() -> None:
                response = client.send_dict(message)
                if response.status_code == 200:
                    return
                if is_retryable_status(response.status_code):
                    raise retryable_http(response.status_code, response.headers)
                # Slack answers a refused webhook with a short error code (`invalid_payload`,
                # `no_service`).
                reason = str(response.body or "").strip()[:100]
                raise DeliveryError(f"Slack: HTTP {response.status_code} {escape(reason)}".strip())

        else:
            raise DeliveryError("Slack: not configured")
        return with_retries(
            attempt,
            channel="Slack",
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            max_wait_seconds=self.max_wait_seconds,
        )
