"""Days in the reconciliation time zone, and the UTC window each covers (a DST day has 23 or 25
hours)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def day_window(first: date, last: date, timezone_name: str) -> tuple[datetime, datetime]:
    """[local midnight of `first`, local midnight after `last`) as UTC instants."""
    tz = ZoneInfo(timezone_name)
    start = datetime.combine(first, time(0), tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def days_between(first: date, last: date) -> list[date]:
    """`first` to `last`, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def span(days: list[date]) -> str:
    """`2026-11-18`, or `2026-11-18 to 2026-11-24`: the days a message speaks of."""
    first, last = days[0].isoformat(), days[-1].isoformat()
    return first if first == last else f"{first} to {last}"


def today(timezone_name: str) -> date:
    """Today's date in `timezone_name`."""
    return datetime.now(ZoneInfo(timezone_name)).date()
