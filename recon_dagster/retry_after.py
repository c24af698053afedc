"""`Retry-After` (RFC 9110), as Stripe, Slack and PagerDuty send it with a 429: seconds to wait.

One parser for every client here: the Stripe source caps what it gets, the alert channels fit it
into a tick's wait budget.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: object, now: datetime | None = None) -> float | None:
    """Delta-seconds or an HTTP date as seconds from `now` (never negative); None when absent or
    unreadable."""
    if isinstance(value, list):  # some clients give a header's values as a list
        value = value[0] if value else None
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # '-0000' dates parse naive; they are UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
