"""A slice of an asset table's rows (a run's days), and what goes wrong reading or writing one."""

from dataclasses import dataclass
from datetime import date, datetime


class AssetTablesError(RuntimeError):
    """The asset storage cannot be reached or used; the message never carries a password."""


@dataclass(frozen=True)
class Slice:
    """The rows of a run: `column` from `low` (included) to `high` (excluded), UTC instants or
    dates."""

    column: str
    low: datetime | date
    high: datetime | date
