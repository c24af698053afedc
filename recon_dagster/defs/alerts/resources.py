"""Where alerts go: Slack and PagerDuty, as resources the alert sensors use.

Slack: an incoming webhook (`SLACK_WEBHOOK_URL`, slack_sdk's `WebhookClient`) or, when
`SLACK_BOT_TOKEN` and `SLACK_CHANNEL` are set, a bot through dagster-slack's `SlackResource`.
`SlackResource` takes only a token; its `WebClient` gets the API base URL set afterwards (for a
local receiver in tests, or a proxy).

PagerDuty: why not dagster-pagerduty's `PagerDutyService`: in 0.29.27 it posts through
`pypd.EventV2`, whose events URL is a class attribute (`EventV2.base_url`: changing it would
change it process-wide, so no per-resource URL for a local receiver or a regional endpoint),
whose validation demands a `payload` even for `resolve` (which the API defines without one), and
whose request body has no `links` (so no link to the day in the Dagster UI), no timeout and no
retries. `PagerDutyAlertResource` is the minimal replacement: one `requests.post` of the
documented v2 body, with bounded retries.

Secrets (webhook URLs, tokens, routing keys) come as `EnvVar`s and never appear in logs or
errors.
"""

from collections.abc import Callable
from typing import Any

import dagster as dg
import requests
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
from recon_dagster.alerts.figures import Evaluation
from recon_dagster.alerts.pagerduty_events import build_resolve, build_trigger
from recon_dagster.alerts.slack_text import escape
from recon_dagster.defs.resources import setting

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


class _AlertChannel(dg.ConfigurableResource):
    """What both channels share: the link to the Dagster UI, and how a delivery is retried."""

    dashboard_url: str | None = setting("RECON_DASHBOARD_URL")
    timeout_seconds: float = 10.0
    max_retries: int = 3
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 30.0

    def _deliver(self, attempt: Callable[[], None], channel: str) -> int:
        """`attempt` with bounded retries (`with_retries`); the number of attempts made."""
        return with_retries(
            attempt,
            channel=channel,
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            max_wait_seconds=self.max_wait_seconds,
        )


class SlackAlertResource(_AlertChannel):
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

    def uses_bot(self) -> bool:
        return bool((self.bot_token or "").strip() and (self.channel or "").strip())

    def is_configured(self) -> bool:
        return self.uses_bot() or bool((self.webhook_url or "").strip())

    def send(self, message: dict[str, Any]) -> int:
        """Deliver `message`; returns the number of attempts. Raises `DeliveryError`."""
        if self.bot_token and self.channel and self.uses_bot():
            channel = self.channel
            client = _BotSlackResource(
                token=self.bot_token,
                base_url=self.api_base_url or _SLACK_API,
                timeout_seconds=self.timeout_seconds,
            ).get_client()

            def attempt() -> None:
                try:
                    client.chat_postMessage(
                        channel=channel,
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
        return self._deliver(attempt, "Slack")


class PagerDutyAlertResource(_AlertChannel):
    """Events API v2 client. The routing key comes as an `EnvVar` and never appears in logs or
    errors."""

    routing_key: str | None = Field(
        default=None, description="Events API v2 routing key (PAGERDUTY_ROUTING_KEY)."
    )
    events_url: str = setting("PAGERDUTY_EVENTS_URL")

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

        return self._deliver(attempt, "PagerDuty")

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
