"""The journal as CSV, one line per debit or credit, in a generic form accounting systems import
(see the README's "Month close" for the columns QuickBooks Online, Xero and NetSuite want).

Amounts are major units, exact (`Decimal`), on the debit or the credit column; the other is
empty, as QuickBooks' and NetSuite's journal imports expect."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from recon_dagster.money import to_major

COLUMNS = ("date", "entry", "account", "debit", "credit", "currency", "memo", "source_ids")


def write(lines: pl.DataFrame, path: str | Path) -> int:
    """Write `lines` (`journal.JOURNAL_SCHEMA`) to `path` as a whole: a partial file never
    takes its place. Returns the number of lines."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    with partial.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for row in lines.iter_rows(named=True):
            currency = row["currency"]
            writer.writerow(
                (
                    row["date"].isoformat(),
                    row["entry"],
                    row["account"],
                    to_major(row["debit"], currency) if row["debit"] else "",
                    to_major(row["credit"], currency) if row["credit"] else "",
                    currency,
                    row["memo"],
                    row["source_ids"],
                )
            )
    partial.replace(target)
    return lines.height
