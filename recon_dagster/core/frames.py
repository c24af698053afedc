"""The two input frames the core compares, as typed Polars schemas.

Sources (Stripe, the payments table) normalise into these; the core trusts them. Money is Int64
minor units; timestamps are UTC; currency codes are upper-case ISO 4217.
"""

from __future__ import annotations

from typing import Any

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")

# One row per Stripe charge created in the window.
CHARGES_SCHEMA = pl.Schema(
    {
        "id": pl.String(),
        "amount": pl.Int64(),
        "amount_captured": pl.Int64(),
        "amount_refunded": pl.Int64(),
        "currency": pl.String(),
        "status": pl.String(),
        "paid": pl.Boolean(),
        "captured": pl.Boolean(),
        "refunded": pl.Boolean(),
        "created": UTC_TS,
        "payment_intent": pl.String(),
        "customer": pl.String(),
        "disputed": pl.Boolean(),
        # The charge's dispute (Disputes API), when `disputed`: Stripe allows one per charge.
        "dispute_id": pl.String(),
        "dispute_status": pl.String(),
        "dispute_reason": pl.String(),
        "dispute_amount": pl.Int64(),
        # A charge that failed validation: which field, and why (null for a valid charge). Such a
        # row is quarantined by the core (listed in `invalid_rows`), never reconciled.
        "invalid_column": pl.String(),
        "invalid_reason": pl.String(),
    }
)
# Charge columns the reconciliation never reads: there for the asset's own readers. A caller
# short of memory may pass them as nulls; the result is the same.
NOT_RECONCILED: tuple[str, ...] = ("customer",)

# One row per row of the application's payments table in the window (duplicates kept: finding
# them is the core's job). `refunded` is null when no refunded column is configured.
PAYMENTS_SCHEMA = pl.Schema(
    {
        "id": pl.String(),
        "amount": pl.Int64(),
        "currency": pl.String(),
        "status": pl.String(),
        "created_at": UTC_TS,
        "refunded": pl.Int64(),
        # A row the source could not read exactly (NULL id/amount/currency, an amount the currency
        # cannot hold): which column, and why; null for a good row. Quarantined by the core.
        "invalid_column": pl.String(),
        "invalid_reason": pl.String(),
    }
)

# Columns added after the first release: frames (and stored asset tables) from before them lack
# them, and read as "no dispute" and "valid".
OPTIONAL_DEFAULTS: dict[str, object] = {
    "disputed": False,
    "dispute_id": None,
    "dispute_status": None,
    "dispute_reason": None,
    "dispute_amount": None,
    "invalid_column": None,
    "invalid_reason": None,
}


def from_arrow(table: Any) -> pl.DataFrame:
    """An Arrow table as a frame (`pl.from_arrow` of a table is always one)."""
    frame = pl.from_arrow(table)
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"expected an Arrow table, got {type(table).__name__}")
    return frame


def empty_charges() -> pl.DataFrame:
    return pl.DataFrame(schema=CHARGES_SCHEMA)


def empty_payments() -> pl.DataFrame:
    return pl.DataFrame(schema=PAYMENTS_SCHEMA)


def conform(frame: pl.DataFrame, schema: pl.Schema, what: str) -> pl.DataFrame:
    """Select and order the schema's columns, refusing a frame that lacks one or has other types."""
    if frame.schema == schema:  # the usual case, and ~1 ms a call of queries that change nothing
        if "disputed" in schema and frame.get_column("disputed").null_count():
            return frame.with_columns(pl.col("disputed").fill_null(False))
        return frame
    absent = [name for name in schema if name not in frame.columns and name in OPTIONAL_DEFAULTS]
    if absent:
        frame = frame.with_columns(
            pl.lit(OPTIONAL_DEFAULTS[name], schema[name]).alias(name) for name in absent
        )
    missing = [name for name in schema if name not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks column(s) {', '.join(missing)}")
    out = frame.select(list(schema))
    wrong = [
        f"{name} is {out.schema[name]}, expected {dtype}"
        for name, dtype in schema.items()
        if out.schema[name] != dtype and out.schema[name] != pl.Null
    ]
    if wrong:
        raise ValueError(f"{what} frame has wrong types: {'; '.join(wrong)}")
    out = out.cast(schema)
    return out.with_columns(pl.col("disputed").fill_null(False)) if "disputed" in schema else out
