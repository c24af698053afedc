"""Raw rows from any of the databases -> `PAYMENTS_SCHEMA`: exact minor units, UTC instants.

Every backend returns the same raw frame (`RAW_SCHEMA`): the columns as text, and `created_us`,
microseconds since the epoch, which are UTC for a column with a time zone and the wall time
otherwise (read here in `RECON_DB_TIMEZONE`). A row that cannot be read exactly is kept, marked
in `invalid_column` / `invalid_reason` (naming the table's column), for the core to quarantine:
one bad row must not hide the rest of the day.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from recon_dagster.core.frames import PAYMENTS_SCHEMA, conform
from recon_dagster.money import ISO_CODES, exponents_table
from recon_dagster.settings import PaymentsTable, redact_url
from recon_dagster.sources.invalid_rows import mark_first_failure
from recon_dagster.sources.payments_db.introspect import TableInfo

log = logging.getLogger(__name__)

RAW_SCHEMA = pl.Schema(
    {
        "id": pl.String(),
        "amount": pl.String(),
        "currency": pl.String(),
        "status": pl.String(),
        "created_us": pl.Int64(),
        "refunded": pl.String(),
    }
)
# Optional raw columns a backend may add (SQLite, whose values carry their own form per row):
# `created_utc` (Boolean) marks a `created_us` that is already UTC; `created_bad` holds a value
# that is not a timestamp at all.

# Sign, up to 14 integer digits (x 10^4 still fits Int64), optional fraction. Anything else
# (exponent notation, more digits, garbage) takes the exact Decimal fallback.
_PLAIN_NUMBER = r"^\s*(?P<_sign>[+-]?)(?P<_int>\d{1,14})(?:\.(?P<_frac>\d*))?\s*$"
_POW10 = {k: 10**k for k in range(19)}
_INT64 = (-(2**63), 2**63 - 1)
_warned: set[tuple[str, str, str]] = set()


def forget_warnings() -> None:
    """Warn again about float columns already warned about (once per process otherwise)."""
    _warned.clear()


def to_payments_frame(raw: pl.DataFrame, table: PaymentsTable, info: TableInfo) -> pl.DataFrame:
    """Raw rows -> `PAYMENTS_SCHEMA`, invalid rows marked."""
    frame = raw.with_columns(pl.col("currency").str.strip_chars().str.to_uppercase())
    if "created_bad" not in frame.columns:
        frame = frame.with_columns(created_bad=pl.lit(None, pl.String))
    checks = [
        (pl.col("id").is_null(), table.id_column, pl.lit(f"NULL in id column {table.id_column!r}")),
        (
            pl.col("created_bad").is_not_null(),
            table.created_at_column,
            pl.format(
                f"'{{}}' in created_at column {table.created_at_column!r} is not a timestamp",
                pl.col("created_bad"),
            ),
        ),
        (
            pl.col("created_us").is_null(),
            table.created_at_column,
            pl.lit(f"NULL in created_at column {table.created_at_column!r}"),
        ),
        (
            pl.col("currency").is_null(),
            table.currency_column,
            pl.lit(f"NULL in currency column {table.currency_column!r}"),
        ),
        (
            ~pl.col("currency").is_in(sorted(ISO_CODES)),
            table.currency_column,
            pl.format(
                f"{{}} in currency column {table.currency_column!r} is not an ISO 4217 currency "
                "code",
                pl.col("currency"),
            ),
        ),
        (
            pl.col("amount").is_null(),
            table.amount_column,
            pl.lit(f"NULL in amount column {table.amount_column!r}"),
        ),
    ]
    frame = mark_first_failure(frame, checks)
    exp = (
        pl.col("currency").replace_strict(exponents_table(), default=2, return_dtype=pl.Int64)
        if table.amount_unit == "major"
        else pl.lit(0, pl.Int64)
    )
    frame = frame.with_columns(_exp=exp)
    frame = _to_minor(frame, "amount", table.amount_column, table, info.amount_kind)
    if table.refunded_column:
        frame = frame.with_columns(
            pl.col("refunded").fill_null("0")
        )  # NULL refunded = nothing refunded
        frame = _to_minor(
            frame, "refunded", table.refunded_column, table, info.refunded_kind or "text"
        )
    else:
        frame = frame.with_columns(refunded=pl.lit(None, pl.Int64))
    frame = _created_at(frame, table, info)
    return conform(frame, PAYMENTS_SCHEMA, f"payments table {table.table}")


def wall_us(instant: datetime, zone: str) -> int:
    """`instant`'s wall time in `zone`, as microseconds since 1970-01-01 00:00 of that wall
    clock."""
    wall = instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    delta = wall - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def within(
    frame: pl.DataFrame,
    raw_us: pl.Series,
    start: datetime | None,
    end: datetime | None,
    info: TableInfo,
    zone: str,
) -> pl.DataFrame:
    """Rows whose instant is in [start, end) (a missing bound: unbounded). A naive column is read
    with a margin (a wall time is ambiguous at a DST change), so this is the exact cut; a wall time
    that does not exist in `zone` (no instant) belongs to the window whose wall-clock span holds
    it."""
    if start is None and end is None:
        return frame
    instant = pl.col("created_at")
    keep = pl.lit(True)
    if start is not None:
        keep &= instant >= start.astimezone(UTC)
    if end is not None:
        keep &= instant < end.astimezone(UTC)
    if not info.created_at_has_timezone:
        wall = pl.Series("_wall", raw_us)
        lo = wall_us(start, zone) if start is not None else -(2**63)
        hi = wall_us(end, zone) if end is not None else 2**63 - 1
        keep = keep.fill_null(False) | (instant.is_null() & wall.is_between(lo, hi, closed="left"))
    return frame.filter(keep.fill_null(False))


def _created_at(frame: pl.DataFrame, table: PaymentsTable, info: TableInfo) -> pl.DataFrame:
    """UTC instants. Naive wall times are read in RECON_DB_TIMEZONE: at a DST fall-back the earlier
    of the two instants (the one the wall clock showed first), and a wall time inside a DST gap
    (which no clock showed) is an invalid row."""
    naive = pl.from_epoch("created_us", "us")
    utc = naive.dt.replace_time_zone("UTC")
    zone = table.db_timezone
    if info.created_at_has_timezone or zone == "UTC":
        created = utc
    else:
        local = naive.dt.replace_time_zone(
            zone, ambiguous="earliest", non_existent="null"
        ).dt.convert_time_zone("UTC")
        created = (
            pl.when(pl.col("created_utc")).then(utc).otherwise(local)
            if "created_utc" in frame.columns
            else local
        )
    frame = frame.with_columns(created_at=created)
    gap = pl.col("created_at").is_null() & pl.col("created_us").is_not_null()
    reason = pl.format(
        f"'{{}}' in created_at column {table.created_at_column!r} is not a time in "
        f"RECON_DB_TIMEZONE {zone} (skipped by a daylight-saving change)",
        naive.dt.to_string("%Y-%m-%d %H:%M:%S%.f"),
    )
    return mark_first_failure(frame, [(gap, table.created_at_column, reason)])


def _to_minor(
    frame: pl.DataFrame, column: str, configured: str, table: PaymentsTable, kind: str
) -> pl.DataFrame:
    """Exact text -> Int64 minor units: vectorised for plain decimals, `Decimal` for the rest.

    A value that is not a whole number of minor units (or not a number) leaves the amount null and
    marks the row invalid, naming the column and the value, except in a float column (see
    `_warn_float`), whose values are rounded half up to the currency's minor unit instead.
    """
    rounding = kind == "float"
    if rounding:
        _warn_float(table, configured)
    # The regex runs once into helper columns; the rest is integer arithmetic on them.
    frame = frame.with_columns(_parts=pl.col(column).str.extract_groups(_PLAIN_NUMBER)).unnest(
        "_parts"
    )
    frac = pl.col("_frac").fill_null("").str.strip_chars_end("0")
    carry = pl.lit(0, pl.Int64)
    if rounding:
        carry = (frac.str.slice(pl.col("_exp"), 1) >= "5").fill_null(False).cast(pl.Int64)
        frac = frac.str.slice(0, pl.col("_exp"))
    # 10^(decimals still free): null (-> fallback, which refuses it) when the fraction is too long.
    room = (pl.col("_exp") - frac.str.len_chars().cast(pl.Int64)).replace_strict(
        _POW10, default=None, return_dtype=pl.Int64
    )
    scale = pl.col("_exp").replace_strict(_POW10, return_dtype=pl.Int64)
    magnitude = (
        pl.col("_int").cast(pl.Int64) * scale
        + frac.cast(pl.Int64, strict=False).fill_null(0) * room
        + carry
    )
    minor = pl.when(pl.col("_sign") == "-").then(-magnitude).otherwise(magnitude)
    frame = frame.with_columns(_minor=minor).drop("_sign", "_int", "_frac")
    slow = frame.with_row_index("_row").filter(
        pl.col("_minor").is_null() & pl.col("invalid_reason").is_null()
    )
    if not slow.is_empty():
        exact = [
            _exact_minor(r, column, configured, table, rounding) for r in slow.iter_rows(named=True)
        ]
        values = pl.Series([v if isinstance(v, int) else None for v in exact], dtype=pl.Int64)
        problems = pl.Series([v if isinstance(v, str) else None for v in exact], dtype=pl.String)
        hit = problems.is_not_null()
        frame = frame.with_columns(
            frame["_minor"].scatter(slow["_row"], values),
            frame["invalid_column"].scatter(slow["_row"].filter(hit), configured),
            frame["invalid_reason"].scatter(slow["_row"].filter(hit), problems.filter(hit)),
        )
    return frame.with_columns(pl.col("_minor").alias(column)).drop("_minor")


def _warn_float(table: PaymentsTable, column: str) -> None:
    """A FLOAT/DOUBLE/REAL column holds binary values that may be a hair off the amount the
    application meant (19.99 is 19.989999999999998...): they are read through their shortest
    decimal text and rounded to the minor unit. The table's owner is told once per process."""
    key = (redact_url(table.url), table.table, column)
    if key in _warned:
        return
    _warned.add(key)
    log.warning(
        "payments table %s: column %r holds floating-point numbers, which may have lost cents; "
        "amounts are "
        "rounded to each currency's minor unit before they are compared. A DECIMAL/NUMERIC column "
        "(or integer minor units) keeps money exact.",
        table.table,
        column,
    )


def _exact_minor(
    row: dict[str, Any], column: str, configured: str, table: PaymentsTable, rounding: bool
) -> int | str:
    """One value the fast path could not take: exact through `Decimal`, or what is wrong with it."""
    text, places = row[column], row["_exp"]
    where = f"{text!r} in {column} column {configured!r}"
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return f"{where} is not a number"
    with localcontext() as ctx:
        ctx.prec = max(64, len(text) + places + 2)  # scaleb must not round
        scaled = value.scaleb(places) if value.is_finite() else value
        if rounding and scaled.is_finite():
            scaled = scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        unit = (
            f"a whole number of minor units of {row['currency']} ({places} decimals)"
            if table.amount_unit == "major"
            else "a whole number (RECON_PAYMENTS_AMOUNT_UNIT is minor)"
        )
        return f"{where} is not {unit}"
    if not _INT64[0] <= int(scaled) <= _INT64[1]:
        return f"{where} is out of range for 64-bit minor units"
    return int(scaled)
