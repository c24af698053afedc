"""One insert, the same on every database: refuse a present id, write, verify what was stored.

The backends wrap this in their own transaction and lock (see each backend's `insert`); this part
only needs the dialect's spelling (`Dialect`) and a way to run one statement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from recon_dagster.money import normalize_currency, to_major
from recon_dagster.settings import PaymentsTable
from recon_dagster.settings.accounts import PLATFORM_ACCOUNT
from recon_dagster.sources.payments_db.introspect import TableInfo

_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

Run = Callable[[str, Sequence[Any]], "tuple[Any, ...] | None"]  # one statement -> its first row


class PaymentsDataError(ValueError):
    """A payments row that cannot be read (or written) exactly; the message names table, column,
    row."""


class InsertResult(StrEnum):
    INSERTED = "inserted"
    ALREADY_PRESENT = "already_present"


@dataclass(frozen=True)
class NewPayment:
    """One row to write, in integer minor units; `insert_payment` converts to the table's unit."""

    id: str
    amount: int
    currency: str
    status: str
    created_at: datetime
    refunded: int | None = 0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"NewPayment.id must be a non-empty string, got {self.id!r}")
        for name, value in (("amount", self.amount), ("refunded", self.refunded)):
            if value is None and name == "refunded":
                continue  # written as NULL, read back as 0
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(
                    f"NewPayment {self.id!r}: {name} must be integer minor units, got {value!r}"
                )
        require_aware(self.created_at, f"NewPayment {self.id!r}: created_at")
        object.__setattr__(self, "currency", normalize_currency(self.currency))


@dataclass(frozen=True)
class Dialect:
    """How one database spells what the insert needs."""

    quote: Callable[[str], str]
    mark: str  # the driver's parameter placeholder
    text: str  # a column as text, e.g. "CAST({} AS CHAR)"
    returning: bool  # INSERT ... RETURNING (MySQL has none: the row is read back instead)

    def table(self, table: PaymentsTable) -> str:
        return quoted_table(table.table, self.quote)


def double_quote(identifier: str) -> str:
    """The SQL standard's quoting (PostgreSQL, DuckDB, SQLite)."""
    return '"' + identifier.replace('"', '""') + '"'


def quoted_table(name: str, quote: Callable[[str], str] | None = None) -> str:
    """`table` or `schema.table` (`database.table` on MySQL), each part quoted (default:
    `double_quote`)."""
    return ".".join((quote or double_quote)(part) for part in name.split("."))


def account_condition(table: PaymentsTable, quote: Callable[[str], str]) -> str:
    """` AND <account column> = '<account>'` when the table is read for one account, else "".
    A Connect platform's own rows are also those with no account (its own sales). An account's
    name is letters, digits, `-` and `_` (checked here again), so it is written as a literal, the
    same way on every database."""
    if not table.account_column or table.account is None:
        return ""
    if not _ACCOUNT_NAME.match(table.account):
        raise ValueError(f"{table.account!r} is not an account name")
    column = quote(table.account_column)
    if table.account == PLATFORM_ACCOUNT:
        return f" AND ({column} IS NULL OR {column} = '{table.account}')"
    return f" AND {column} = '{table.account}'"


def require_aware(value: Any, what: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime (an instant), got {value!r}")


def column_time(instant: datetime, info: TableInfo, zone: str) -> datetime:
    """The instant as the column wants it: aware UTC, or the naive wall time in
    RECON_DB_TIMEZONE."""
    require_aware(instant, "timestamp")
    if info.created_at_has_timezone:
        return instant.astimezone(UTC)
    return instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def check_and_write(
    run: Run,
    dialect: Dialect,
    table: PaymentsTable,
    row: NewPayment,
    info: TableInfo,
    ids: list[str],
    created: Any,
) -> InsertResult:
    """Inside the caller's transaction: refuse a present id, else insert and verify the stored
    amount. Raising (a value the column cannot hold) lets the caller roll back: nothing is
    half-written."""
    marks = ", ".join([dialect.mark] * len(ids))
    where = f"{dialect.text.format(dialect.quote(table.id_column))} IN ({marks})"
    if run(f"SELECT 1 FROM {dialect.table(table)} WHERE {where} LIMIT 1", ids):
        return InsertResult.ALREADY_PRESENT
    values: dict[str, Any] = {
        table.id_column: row.id,
        table.amount_column: in_unit(row.amount, row.currency, table),
        table.currency_column: row.currency,
        table.status_column: row.status,
        table.created_at_column: created,
    }
    if table.account_column and table.account not in (None, PLATFORM_ACCOUNT):
        values[table.account_column] = table.account  # the platform's own sales have none
    if table.refunded_column:
        values[table.refunded_column] = (
            None if row.refunded is None else in_unit(row.refunded, row.currency, table)
        )
    stored = [
        c for c in (table.amount_column, table.refunded_column) if c and values[c] is not None
    ]
    # Amounts go as strings, so the server casts them to the column's type exactly; what it kept
    # is read back (RETURNING, or a SELECT of the new row) and compared below.
    as_text = ", ".join(dialect.text.format(dialect.quote(c)) for c in stored) or "1"
    insert = (
        f"INSERT INTO {dialect.table(table)} ({', '.join(map(dialect.quote, values))}) "
        f"VALUES ({', '.join([dialect.mark] * len(values))})"
    )
    if dialect.returning:
        kept = run(f"{insert} RETURNING {as_text}", list(values.values()))
    else:
        run(insert, list(values.values()))
        kept = run(
            f"SELECT {as_text} FROM {dialect.table(table)} WHERE {dialect.quote(table.id_column)} "
            f"= {dialect.mark} LIMIT 1",
            [row.id],
        )
    for column, value in zip(stored, kept or (), strict=False):
        if Decimal(value) != Decimal(values[column]):
            raise PaymentsDataError(
                f"payments table {table.table}: row {row.id!r} would store {values[column]} "
                f"({table.amount_unit} units of {row.currency}) as {value} in column {column!r} "
                f"({info.columns.get(column, '?')}), "
                "which cannot hold the amount exactly"
            )
    return InsertResult.INSERTED


def in_unit(minor: int, currency: str, table: PaymentsTable) -> str:
    """Exact text of the amount in the table's unit: '1999' (minor), '19.99' USD or '1.234' KWD
    (major)."""
    if table.amount_unit == "minor":
        return str(minor)
    return format(to_major(minor, currency), "f")


def write_error(table: PaymentsTable, row: NewPayment, exc: Exception) -> PaymentsDataError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return PaymentsDataError(
        f"payments table {table.table}: cannot insert row {row.id!r}: {first_line}"
    )
