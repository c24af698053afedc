"""The team's bank statement lines, for payout reconciliation's bank step.

Read through the payments reader (`payments_db`), which already reads a mapped table on all four
databases with exact amounts and time zones: the bank table is mapped onto it in
`BankTable.as_payments_table`. A `DATE` column is read as the date itself; a timestamp column
gives the date of its instant in RECON_TIMEZONE.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from recon_dagster.core.payout_frames import BANK_SCHEMA
from recon_dagster.days import day_window
from recon_dagster.settings import BankTable, ConfigError
from recon_dagster.sources import payments_db

log = logging.getLogger(__name__)


# The payments reader names the payments variables in its errors; for the bank table, the bank's.
_VARIABLES = {
    "RECON_DATABASE_URL": "RECON_BANK_DATABASE_URL",
    "RECON_PAYMENTS_TABLE": "RECON_BANK_TABLE",
    "RECON_PAYMENTS_ID_COLUMN": "RECON_BANK_ID_COLUMN",
    "RECON_PAYMENTS_AMOUNT_COLUMN": "RECON_BANK_AMOUNT_COLUMN",
    "RECON_PAYMENTS_CURRENCY_COLUMN": "RECON_BANK_CURRENCY_COLUMN",
    "RECON_PAYMENTS_CREATED_AT_COLUMN": "RECON_BANK_DATE_COLUMN",
    "RECON_PAYMENTS_STATUS_COLUMN": "RECON_BANK_REFERENCE_COLUMN",
}


@contextmanager
def _as_bank_errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        variable = _VARIABLES.get(exc.variable, exc.variable)
        raise ConfigError(variable, exc.problem.replace("payments table", "bank table")) from None


def validate(bank: BankTable) -> payments_db.TableInfo:
    """Connect, and check the bank table and its mapped columns exist (errors name RECON_BANK_*)."""
    with _as_bank_errors():
        return payments_db.validate(bank.as_payments_table())


def read_deposits(bank: BankTable, first: date, last: date, timezone: str) -> pl.DataFrame:
    """Statement lines dated `first` to `last` (inclusive), as `BANK_SCHEMA`. Lines that cannot be
    read exactly (a NULL amount, an unknown currency) are left out and named in one warning."""
    table = bank.as_payments_table()
    info = validate(bank)
    declared = {name.lower(): kind for name, kind in info.columns.items()}.get(
        bank.date_column.lower(), ""
    )
    if declared == "date":
        table = dataclasses.replace(
            table, db_timezone="UTC"
        )  # a date is no instant: midnight UTC stands for it
        start = datetime.combine(first, time(0), tzinfo=UTC)
        end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
        zone = "UTC"
    else:
        start, end = day_window(first, last, timezone)
        zone = timezone
    with _as_bank_errors():
        rows = payments_db.read_window(table, start, end)
    bad = rows.filter(pl.col("invalid_reason").is_not_null())
    if not bad.is_empty():
        log.warning(
            "bank table %s: %d line(s) left out: %s",
            bank.table,
            bad.height,
            "; ".join(
                f"{r['id']}: {r['invalid_reason']}" for r in bad.head(5).iter_rows(named=True)
            ),
        )
    rows = rows.filter(pl.col("invalid_reason").is_null())
    return rows.select(
        "id",
        "amount",
        "currency",
        date=pl.col("created_at").dt.convert_time_zone(zone).dt.date(),
        reference=pl.col("status") if bank.reference_column else pl.lit(None, pl.String),
    ).cast(BANK_SCHEMA)


@dataclass(frozen=True)
class BankLines:
    """The bank statement table as payout reconciliation reads it: deposits by date, days cut in
    `timezone` (RECON_TIMEZONE)."""

    table: BankTable
    timezone: str

    @property
    def has_reference(self) -> bool:
        return self.table.reference_column is not None

    def read_deposits(self, first: date, last: date) -> pl.DataFrame:
        return read_deposits(self.table, first, last, self.timezone)
