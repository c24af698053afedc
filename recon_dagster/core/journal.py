"""Journal entries for a general ledger from the balance activity: one balanced entry (a debit
line and a credit line of the same amount) per day, currency and reporting category.

A mapping names, for each category, the account to debit and the account to credit as the
category usually moves money. The Stripe balance account decides the direction: money coming
into the balance debits it, money leaving credits it, so an entry whose amount runs the other
way (a positive refund, a negative fee) books the mapping reversed. A mapping that does not
touch the Stripe account books positive amounts as written and negative ones reversed. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from recon_dagster.core.balance_frames import UNMAPPED

JOURNAL_SCHEMA = pl.Schema(
    {
        "date": pl.Date(),
        "entry": pl.String(),  # one id per balanced pair: `2026-11-03/USD/charge`
        "account": pl.String(),
        "debit": pl.Int64(),  # minor units, 0 on a credit line
        "credit": pl.Int64(),
        "currency": pl.String(),
        "memo": pl.String(),
        "source_ids": pl.String(),  # balance transaction ids, space-separated (the first few)
    }
)


class UnmappedCategoryError(ValueError):
    """The activity has a category the GL mapping does not name."""

    def __init__(self, categories: list[str]):
        self.categories = categories
        super().__init__(
            "the GL mapping (RECON_GL_MAPPING) has no accounts for "
            + ", ".join(repr(c) for c in categories)
            + ": add a [categories.<name>] table with debit and credit accounts for each"
        )


@dataclass(frozen=True)
class Account:
    """The debit and credit account of one category."""

    debit: str
    credit: str


@dataclass(frozen=True)
class GLMapping:
    """Category -> accounts, and which account is the Stripe balance."""

    stripe_account: str
    categories: Mapping[str, Account]


def journal(
    by_category: pl.DataFrame, mapping: GLMapping, unmapped: list[str] | tuple[str, ...] = ()
) -> pl.DataFrame:
    """The journal lines (`JOURNAL_SCHEMA`) of `by_category` (`rollforward.ACTIVITY_SCHEMA`);
    zero amounts book nothing. A category the mapping lacks raises `UnmappedCategoryError`
    naming it (for the `unmapped` bucket: Stripe's categories in it, `unmapped`)."""
    entries = by_category.filter(pl.col("amount") != 0)
    missing = sorted(set(entries.get_column("category").unique()) - set(mapping.categories))
    if missing:
        named = [n for c in missing for n in (unmapped if c == UNMAPPED and unmapped else [c])]
        raise UnmappedCategoryError(named)
    names = list(mapping.categories)
    accounts = pl.DataFrame(
        {
            "category": names,
            "mapped_debit": [mapping.categories[c].debit for c in names],
            "mapped_credit": [mapping.categories[c].credit for c in names],
        },
        schema={"category": pl.String(), "mapped_debit": pl.String(), "mapped_credit": pl.String()},
    )
    stripe = pl.lit(mapping.stripe_account)
    # Where the mapping puts money into the Stripe balance, the usual amount is positive; where it
    # takes money out, negative; elsewhere the sign decides alone.
    usual_sign = (
        pl.when(pl.col("mapped_debit") == stripe)
        .then(1)
        .when(pl.col("mapped_credit") == stripe)
        .then(-1)
        .otherwise(1)
    )
    as_mapped = pl.col("amount").sign() == usual_sign
    booked = entries.join(accounts, on="category", how="left").with_columns(
        debit_account=pl.when(as_mapped).then("mapped_debit").otherwise("mapped_credit"),
        credit_account=pl.when(as_mapped).then("mapped_credit").otherwise("mapped_debit"),
        value=pl.col("amount").abs(),
        entry=pl.concat_str(
            pl.col("day").cast(pl.String()), pl.col("currency"), pl.col("category"), separator="/"
        ),
        memo=pl.format("Stripe {}: {} balance transactions", "category", "transactions"),
        source_ids=pl.col("source_ids").list.join(" "),
    )
    common = ("entry", "currency", "memo", "source_ids")
    debits = booked.select(
        pl.col("day").alias("date"),
        *common,
        account="debit_account",
        debit="value",
        credit=pl.lit(0, pl.Int64()),
    )
    credits = booked.select(
        pl.col("day").alias("date"),
        *common,
        account="credit_account",
        debit=pl.lit(0, pl.Int64()),
        credit="value",
    )
    return (
        pl.concat([debits, credits], how="diagonal")
        .select(JOURNAL_SCHEMA.names())
        .cast(JOURNAL_SCHEMA)
        .sort("date", "currency", "entry", pl.col("debit") == 0)
    )


def unbalanced(lines: pl.DataFrame) -> pl.DataFrame:
    """The days and currencies whose debits and credits differ: `date, currency, debit, credit`
    (empty when the journal balances)."""
    sums = lines.group_by("date", "currency").agg(pl.col("debit").sum(), pl.col("credit").sum())
    return sums.filter(pl.col("debit") != pl.col("credit")).sort("date", "currency")
