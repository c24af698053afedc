"""The first check each row fails, as `invalid_column` / `invalid_reason`: how the sources mark a
row they could not read exactly (the core sets such rows apart).

A reason is text about the row (its id, the value), and formatting one per row costs as much as
the rest of the normalisation: on a 10M-row day, a `when/then` chain computes every reason for
every row before choosing. So the checks run as booleans over all rows, and reasons are formatted
only for the rows that failed one (a handful on a real day).
"""

from __future__ import annotations

import polars as pl

# (fails: a Boolean expression, null read as not failing; the column named; the reason, an
# expression evaluated on failing rows only)
Check = tuple[pl.Expr, str, pl.Expr]


def mark_first_failure(frame: pl.DataFrame, checks: list[Check]) -> pl.DataFrame:
    """`frame` with `invalid_column` / `invalid_reason` set from the first failing check, on rows
    not already marked (the columns are added, null, when absent)."""
    if "invalid_reason" not in frame.columns:
        frame = frame.with_columns(
            invalid_column=pl.lit(None, pl.String), invalid_reason=pl.lit(None, pl.String)
        )
    which = pl.lit(None, pl.UInt16)
    for i, (fails, _, _) in reversed(list(enumerate(checks))):  # reversed: the first check wins
        which = pl.when(fails.fill_null(False)).then(pl.lit(i, pl.UInt16)).otherwise(which)
    which = pl.when(pl.col("invalid_reason").is_null()).then(which)
    at = frame.select(pl.arg_where(which.is_not_null())).to_series()
    if at.is_empty():
        return frame
    failed = frame[at].with_columns(_check=which)
    names = {i: name for i, (_, name, _) in enumerate(checks)}
    reason = pl.lit(None, pl.String)
    for i, (_, _, why) in enumerate(checks):
        reason = pl.when(pl.col("_check") == i).then(why).otherwise(reason)
    marked = failed.select(
        invalid_column=pl.col("_check").replace_strict(names, return_dtype=pl.String),
        invalid_reason=reason.cast(pl.String),
    )
    return frame.with_columns(
        frame.get_column("invalid_column").scatter(at, marked.get_column("invalid_column")),
        frame.get_column("invalid_reason").scatter(at, marked.get_column("invalid_reason")),
    )
