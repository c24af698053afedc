"""Days in the reconciliation time zone: the partitions, and the UTC window each day covers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg


def daily_partitions(start_date: date, timezone_name: str) -> dg.DailyPartitionsDefinition:
    """One partition per calendar day in `timezone_name`; a DST day has 23 or 25 hours."""
    return dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone=timezone_name)


def day_window(first: date, last: date, timezone_name: str) -> tuple[datetime, datetime]:
    """[local midnight of `first`, local midnight after `last`) as UTC instants."""
    tz = ZoneInfo(timezone_name)
    start = datetime.combine(first, time(0), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
