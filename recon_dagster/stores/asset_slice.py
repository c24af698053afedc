"""A slice of an asset table's rows (a run's days), and what goes wrong reading or writing one."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl


class AssetTablesError(RuntimeError):
    """The asset storage cannot be reached or used; the message never carries a password."""


@dataclass(frozen=True)
class Slice:
    """The rows of a run: `column` from `low` (included) to `high` (excluded), UTC instants or
    dates."""

    column: str
    low: datetime | date
    high: datetime | date

    def reads(self, column: str, values: int, skip: Collection[str]) -> bool:
        """Whether a read of this slice fetches `column`, which holds `values` non-null values in
        it: only a filled column the caller did not `skip`, and always the slice's own."""
        return column == self.column or (values > 0 and column not in skip)


def with_null_columns(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """`frame` (the slice's columns holding a value) with the schema's others as typed nulls,
    in table order.

    Most days leave whole columns empty (a charge's dispute, a row's invalid reason): read, each
    would take 16 bytes a row as Arrow string views, ~30 MiB a column per million rows, while a
    null constant takes none. So the stores count each column's values in the slice first (in
    the read's snapshot) and read only the filled ones; the slice's own column always is.
    """
    return frame.select(
        pl.col(name)
        if name in frame.columns
        else pl.repeat(None, frame.height, dtype=dtype).alias(name)
        for name, dtype in schema.items()
    )
