"""Bounded retries for alert delivery, and errors that never carry a secret.

Webhook URLs, tokens and routing keys are secrets: an exception from an HTTP client may quote the
URL it failed on, so failures are reported as `DeliveryError`s that carry only an HTTP status or
an exception's class name.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import requests

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

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def with_retries(attempt: Callable[[], None], *, channel: str, max_retries: int, backoff_seconds: float,
                 sleep: Callable[[float], None] = time.sleep) -> int:  # fmt: skip
    """Run `attempt` until it returns, retrying `Retryable` and network errors with exponential backoff.

    Returns the number of attempts made. Raises `DeliveryError` when retries run out or the failure
    is not retryable (a 4xx other than 429, a rejected payload).
    """
    tries = 0
    while True:
        tries += 1
        try:
            attempt()
            return tries
        except Retryable as exc:
            cause = exc.cause
        except DeliveryError:
            raise
        except RETRYABLE_EXCEPTIONS as exc:
            cause = type(exc).__name__
        except Exception as exc:  # anything else: not retried, and its message (maybe a URL) dropped
            raise DeliveryError(f"{channel}: {type(exc).__name__}") from None
        if tries > max_retries:
            raise DeliveryError(f"{channel}: {cause} after {tries} attempt(s)") from None
        sleep(backoff_seconds * (2 ** (tries - 1)))
