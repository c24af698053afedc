"""The Stripe balance rolled forward per day and currency, like a bank statement: opening +
activity + payouts = closing, and opening(day) = closing(day - 1).

Activity is summed per Stripe reporting category. Fees are their own category: a transaction's
`amount` goes to its category and its `fee` (taken from the balance) to `fee`, so the categories
of a day add up to the sum of its `net`, which is exactly how the balance moved. Pure Polars.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from recon_dagster.core.balance_frames import PAYOUT_CATEGORIES, UNMAPPED, category

ACTIVITY_SCHEMA = pl.Schema(
    {
        "day": pl.Date(),
        "currency": pl.String(),
        "category": pl.String(),
        "amount": pl.Int64(),
        "transactions": pl.UInt32(),
        "source_ids": pl.List(pl.String()),  # the first few balance transaction ids
    }
)
ROLLFORWARD_SCHEMA = pl.Schema(
    {
        "day": pl.Date(),
        "currency": pl.String(),
        "opening": pl.Int64(),
        "activity": pl.Int64(),  # every category but the payouts
        "payouts": pl.Int64(),  # payouts (negative) and payout reversals
        "closing": pl.Int64(),
    }
)
QUARANTINE_COLUMNS = ("id", "created", "invalid_column", "invalid_reason")
SOURCE_IDS = 20  # ids kept per journal line: enough to find the rest from


@dataclass(frozen=True)
class Activity:
    """A period's balance transactions summed per day, currency and category; the transactions
    that could not be summed; and the Stripe categories summed under `unmapped`."""

    by_category: pl.DataFrame  # ACTIVITY_SCHEMA
    quarantined: pl.DataFrame  # QUARANTINE_COLUMNS
    unmapped: list[str]


def local_day(created: pl.Expr, timezone: str) -> pl.Expr:
    """The date of a UTC instant in `timezone` (a DST day has 23 or 25 hours)."""
    return created.dt.convert_time_zone(timezone).dt.date()


def activity(transactions: pl.DataFrame, timezone: str) -> Activity:
    """Sum `transactions` (`BALANCE_TRANSACTIONS_SCHEMA`) per day in `timezone`, currency and
    category; the fee of every transaction is summed, negated, under `fee`."""
    valid = transactions.filter(pl.col("invalid_reason").is_null())
    quarantined = transactions.filter(pl.col("invalid_reason").is_not_null()).select(
        QUARANTINE_COLUMNS
    )
    rows = valid.select(
        "id",
        "currency",
        "amount",
        "fee",
        day=local_day(pl.col("created"), timezone),
        category=category(pl.col("reporting_category")),
    )
    gross = rows.group_by("day", "currency", "category").agg(
        pl.col("amount").sum(), pl.len().alias("transactions"), pl.col("id").head(SOURCE_IDS)
    )
    fees = (
        rows.filter(pl.col("fee") != 0)
        .group_by("day", "currency")
        .agg(
            -pl.col("fee").sum().alias("amount"),
            pl.len().alias("transactions"),
            pl.col("id").head(SOURCE_IDS),
        )
        .with_columns(category=pl.lit("fee"))
    )
    summed = (
        pl.concat([gross, fees], how="diagonal")
        .group_by("day", "currency", "category")
        .agg(
            pl.col("amount").sum(),
            pl.col("transactions").sum(),
            pl.col("id").explode().head(SOURCE_IDS).alias("source_ids"),
        )
        .select(ACTIVITY_SCHEMA.names())
        .cast(ACTIVITY_SCHEMA)
        .sort("day", "currency", "category")
    )
    names = valid.filter(category(pl.col("reporting_category")) == UNMAPPED)
    unmapped = sorted({str(c) for c in names.get_column("reporting_category").drop_nulls()})
    if names.get_column("reporting_category").null_count():
        unmapped.append("(none)")
    return Activity(summed, quarantined, unmapped)


def roll_forward(
    by_category: pl.DataFrame, opening: Mapping[str, int], days: list[date]
) -> pl.DataFrame:
    """One row per day of `days` (consecutive) and currency: the opening balance (`opening` for
    the first day, 0 for a currency it lacks), the activity, the payouts and the closing balance.
    A currency appears on every day from the first, so each day opens where the last closed."""
    currencies = sorted(set(opening) | set(by_category.get_column("currency").unique()))
    grid = pl.DataFrame({"day": days}, schema={"day": pl.Date()}).join(
        pl.DataFrame({"currency": currencies}, schema={"currency": pl.String()}), how="cross"
    )
    is_payout = pl.col("category").is_in(PAYOUT_CATEGORIES)
    daily = by_category.group_by("day", "currency").agg(
        activity=pl.col("amount").filter(~is_payout).sum(),
        payouts=pl.col("amount").filter(is_payout).sum(),
    )
    first = pl.DataFrame(
        {"currency": list(opening), "first_opening": list(opening.values())},
        schema={"currency": pl.String(), "first_opening": pl.Int64()},
    )
    return (
        grid.join(daily, on=["day", "currency"], how="left")
        .join(first, on="currency", how="left")
        .with_columns(pl.col("activity", "payouts", "first_opening").fill_null(0))
        .sort("currency", "day")
        .with_columns(
            closing=pl.col("first_opening")
            + (pl.col("activity") + pl.col("payouts")).cum_sum().over("currency")
        )
        .with_columns(opening=pl.col("closing") - pl.col("activity") - pl.col("payouts"))
        .select(ROLLFORWARD_SCHEMA.names())
        .cast(ROLLFORWARD_SCHEMA)
        .sort("day", "currency")
    )


def balances(transactions: pl.DataFrame) -> dict[str, int]:
    """Each currency's balance after `transactions`: the sum of their `net` (quarantined ones
    left out)."""
    valid = transactions.filter(pl.col("invalid_reason").is_null())
    sums = valid.group_by("currency").agg(pl.col("net").sum())
    return {str(c): int(n) for c, n in sums.iter_rows()}


def pending(transactions: pl.DataFrame, moment: datetime) -> dict[str, int]:
    """Each currency's funds not yet available at `moment`: the net of transactions created by
    then whose `available_on` is later."""
    later = transactions.filter(
        pl.col("invalid_reason").is_null(),
        pl.col("created") < moment,
        pl.col("available_on") > moment,
    )
    sums = later.group_by("currency").agg(pl.col("net").sum())
    return {str(c): int(n) for c, n in sums.iter_rows() if n}


def chain_breaks(rollforward: pl.DataFrame) -> pl.DataFrame:
    """The days whose opening is not the previous day's closing, per currency: `day, currency,
    opening, previous_closing` (a day stored before the day before it was re-run). A day whose
    previous day is in the frame but lacks the currency follows a closing of 0; the first day of
    the frame has nothing to follow."""
    following = pl.col("day").dt.offset_by("1d")
    previous = rollforward.select(following, "currency", previous_closing="closing")
    followed = rollforward.select(following).unique().with_columns(followed=pl.lit(True))
    return (
        rollforward.join(previous, on=["day", "currency"], how="left")
        .join(followed, on="day", how="inner")
        .with_columns(pl.col("previous_closing").fill_null(0))
        .filter(pl.col("opening") != pl.col("previous_closing"))
        .select("day", "currency", "opening", "previous_closing")
        .sort("day", "currency")
    )
