"""The month close as one workbook for people: Summary, Roll-forward, Reconciling items,
Journal, Payouts, Exceptions. Money is written as numbers with the currency's own format (two
decimals for USD, none for JPY, three for KWD), so the sheets add up in any spreadsheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter

from recon_dagster.core.month_close import MonthClose
from recon_dagster.money import exponent, format_major, to_major

SHEETS = ("Summary", "Roll-forward", "Reconciling items", "Journal", "Payouts", "Exceptions")


class _Book:
    """One workbook being written: a cached number format per currency."""

    def __init__(self, path: Path):
        self.book = xlsxwriter.Workbook(str(path))
        self.bold = self.book.add_format({"bold": True})
        self.title = self.book.add_format({"bold": True, "font_size": 14})
        self.column_head = self.book.add_format({"bold": True, "align": "right"})
        self.formats: dict[str, Any] = {}

    def money_format(self, currency: str) -> Any:
        if currency not in self.formats:
            places = exponent(currency)
            pattern = "#,##0" + ("." + "0" * places if places else "")
            self.formats[currency] = self.book.add_format({"num_format": pattern})
        return self.formats[currency]

    def money(self, sheet: Any, row: int, col: int, minor: int | None, currency: str) -> None:
        if minor is None:
            sheet.write_blank(row, col, None)
            return
        # A spreadsheet keeps every number as a double: here, at the last edge, the exact decimal
        # becomes one, which holds it to the minor unit (xlsxwriter writes 15 significant digits)
        # for any amount under 10**13 major units.
        value = float(to_major(int(minor), currency))
        sheet.write_number(row, col, value, self.money_format(currency))

    def table(self, name: str, header: list[str], rows: list[list[Any]], money: set[int]) -> None:
        """A sheet of `rows` under `header`; columns in `money` hold minor units of the row's
        `currency` column."""
        sheet = self.book.add_worksheet(name)
        sheet.write_row(0, 0, header, self.bold)
        currency_col = header.index("currency") if "currency" in header else None
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row):
                if c in money and currency_col is not None:
                    self.money(sheet, r, c, value, row[currency_col])
                elif isinstance(value, int):
                    sheet.write_number(r, c, value)
                else:
                    sheet.write(r, c, "" if value is None else str(value))
        sheet.set_column(0, len(header) - 1, 16)
        sheet.freeze_panes(1, 0)


def write(close: MonthClose, path: str | Path) -> None:
    """Write the workbook of `close` to `path` as a whole (a partial file never takes its
    place)."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial.xlsx")
    book = _Book(partial)
    _summary(book, close)
    rf = close.rollforward.sort("day", "currency")
    book.table(
        "Roll-forward",
        ["day", "currency", "opening", "activity", "payouts", "closing"],
        [[d.isoformat(), c, o, a, p, cl] for d, c, o, a, p, cl in rf.iter_rows()],
        money={2, 3, 4, 5},
    )
    book.table(
        "Reconciling items",
        ["kind", "id", "currency", "amount", "date"],
        [
            [i.kind, i.id, i.currency, i.amount, i.date.isoformat() if i.date else None]
            for i in close.items
        ],
        money={3},
    )
    book.table(
        "Journal",
        ["date", "entry", "account", "debit", "credit", "currency", "memo", "source_ids"],
        [
            [r["date"].isoformat(), r["entry"], r["account"], r["debit"] or None]
            + [r["credit"] or None, r["currency"], r["memo"], r["source_ids"]]
            for r in close.journal.iter_rows(named=True)
        ],
        money={3, 4},
    )
    payouts = close.activity.filter(pl.col("category").is_in(["payout", "payout_reversal"]))
    book.table(
        "Payouts",
        ["day", "currency", "category", "amount", "transactions", "source_ids"],
        [
            [d.isoformat(), c, k, a, n, " ".join(ids)]
            for d, c, k, a, n, ids in payouts.sort("day", "currency").iter_rows()
        ]
        + [
            ["in transit", i.currency, i.kind, i.amount, 1, i.id]
            for i in close.items
            if i.kind == "payout_in_transit"
        ],
        money={3},
    )
    exceptions = [
        ["quarantined", r["id"], "", f"{r['invalid_column']}: {r['invalid_reason']}"]
        for r in close.quarantined.iter_rows(named=True)
    ]
    exceptions += [
        ["unmapped category", name, "", "not a category Stripe documents"]
        for name in close.unmapped
    ]
    for c in close.currencies:
        difference = close.difference(c)
        if difference:
            gap = format_major(difference, c)
            exceptions.append(["not tied out", c, c, f"closing - Stripe's balance = {gap}"])
    book.table("Exceptions", ["kind", "id", "currency", "detail"], exceptions, money=set())
    book.book.close()
    partial.replace(target)


def _summary(book: _Book, close: MonthClose) -> None:
    sheet = book.book.add_worksheet("Summary")
    sheet.write(0, 0, f"Month close {close.month} ({close.timezone})", book.title)
    sheet.write(1, 0, "Status", book.bold)
    sheet.write(1, 1, close.status)
    sheet.write(2, 0, "Locked", book.bold)
    sheet.write(2, 1, "yes" if close.locked else "no")
    currencies = close.currencies
    sheet.write_row(4, 1, currencies, book.column_head)
    categories = sorted({k for c in currencies for k in close.by_category(c)})
    lines: list[tuple[str, Any]] = [("Opening balance", close.opening)]
    lines += [(f"  {k}", lambda c, k=k: close.by_category(c).get(k, 0)) for k in categories]
    lines += [
        ("Payouts", close.payouts),
        ("Closing balance", close.closing),
        (
            "Stripe balance",
            lambda c: None if close.stripe_balance is None else close.stripe_balance.get(c, 0),
        ),
        ("Difference", close.difference),
    ]
    for r, (label, value) in enumerate(lines, start=5):
        bold = label in ("Opening balance", "Closing balance", "Difference")
        sheet.write(r, 0, label, book.bold if bold else None)
        for c, currency in enumerate(currencies, start=1):
            book.money(sheet, r, c, value(currency), currency)
    sheet.set_column(0, 0, 28)
    sheet.set_column(1, len(currencies), 18)
    # One printed page, across: the page finance signs.
    sheet.set_landscape()
    sheet.fit_to_pages(1, 1)
