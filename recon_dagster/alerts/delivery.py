"""Bounded retries for alert delivery, and errors that never carry a secret.

Webhook URLs, tokens and routing keys are secrets: an exception from an HTTP client may quote the
URL it failed on, so failures are reported as `DeliveryError`s that carry only an HTTP status or
an exception's class name.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import requests

from recon_dagster.retry_after import parse_retry_after

RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    TimeoutError,
    socket.timeout,
    ConnectionError,
    OSError,  # urllib's URLError (slack_sdk) is an OSError
)

# slack_sdk logs request URLs at DEBUG; its clients get this logger, kept above DEBUG, instead.
QUIET_SDK_LOGGER = logging.getLogger("recon_dagster.alerts.sdk")
QUIET_SDK_LOGGER.setLevel(logging.INFO)


class DeliveryError(Exception):
    """An alert was not delivered. The message names the channel and cause, never a secret."""


class Retryable(Exception):
    """Raised by an attempt whose failure is worth retrying (429, 5xx, timeout)."""

    def __init__(self, cause: str, retry_after: float | None = None):
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after  # seconds the receiver asked us to wait (Retry-After)


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def retry_after_seconds(
    headers: Mapping[str, str] | None, now: datetime | None = None
) -> float | None:
    """The `Retry-After` header (any case) as seconds; None when absent or unreadable."""
    value = next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None)
    return parse_retry_after(value, now)


def retryable_http(status: int, headers: Mapping[str, str] | None = None) -> Retryable:
    return Retryable(f"HTTP {status}", retry_after_seconds(headers) if status == 429 else None)


def with_retries(
    attempt: Callable[[], None],
    *,
    channel: str,
    max_retries: int,
    backoff_seconds: float,
    max_wait_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run `attempt` until it returns, retrying `Retryable` and network errors with exponential
    backoff.

    A receiver's `Retry-After` lengthens the wait before the next attempt; it never adds attempts.
    The waits of one delivery add up to at most `max_wait_seconds` (a sensor tick has a deadline):
    a longer `Retry-After` ends the delivery, and the sensor tries again on a later tick.

    Returns the number of attempts made. Raises `DeliveryError` when retries run out or the failure
    is not retryable (a 4xx other than 429, a rejected payload).
    """
    tries = 0
    waited = 0.0
    while True:
        tries += 1
        retry_after = None
        try:
            attempt()
            return tries
        except Retryable as exc:
            cause, retry_after = exc.cause, exc.retry_after
        except DeliveryError:
            raise
        except RETRYABLE_EXCEPTIONS as exc:
            cause = type(exc).__name__
        except (
            Exception
        ) as exc:  # anything else: not retried, and its message (maybe a URL) dropped
            raise DeliveryError(f"{channel}: {type(exc).__name__}") from None
        if tries > max_retries:
            raise DeliveryError(f"{channel}: {cause} after {tries} attempt(s)") from None
        wait = max(backoff_seconds * (2 ** (tries - 1)), retry_after or 0.0)
        if waited + wait > max_wait_seconds:
            asked = f" (Retry-After {retry_after:g}s)" if retry_after else ""
            raise DeliveryError(
                f"{channel}: {cause}{asked} after {tries} attempt(s); waiting longer than "
                f"{max_wait_seconds:g}s is left to the next tick"
            ) from None
        sleep(wait)
        waited += wait
