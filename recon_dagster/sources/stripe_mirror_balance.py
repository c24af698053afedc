"""A day's balance transactions by `created` from a Stripe mirror in PostgreSQL, where it keeps
them (Stripe Data Pipeline's `balance_transactions`; stripe-sync-engine keeps none, and the API
is read instead).

Rows are shaped as the API's objects and go through the API source's own row check
(`stripe_balance.transaction_row`), so a broken mirror row is quarantined or refused exactly as
a broken API object would be, naming the row and the field.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from psycopg import sql

from recon_dagster.core.balance_frames import BALANCE_TRANSACTIONS_SCHEMA
from recon_dagster.sources.stripe_balance import transaction_row
from recon_dagster.sources.stripe_client import ceil_seconds
from recon_dagster.sources.stripe_mirror import Mirror
from recon_dagster.sources.stripe_mirror_payouts import PayoutTables, checked, epoch, rows_of

_NEEDED = ("id", "amount", "fee", "net", "currency", "created")
_SOURCES = ("source", "source_id")


def keeps_balance_transactions(tables: PayoutTables) -> bool:
    """Whether the mirror's `balance_transactions` has what a day's listing needs."""
    have = tables.transactions or {}
    return all(c in have for c in _NEEDED) and any(c in have for c in _SOURCES)


def fetch_balance_transactions(
    mirror: Mirror, tables: PayoutTables, start: datetime, end: datetime
) -> pl.DataFrame:
    """Every balance transaction the mirror keeps created in [start, end), oldest first, as
    `BALANCE_TRANSACTIONS_SCHEMA`."""
    have = tables.transactions or {}
    source = next(c for c in _SOURCES if c in have)

    def optional(column: str, value: sql.Composable) -> sql.Composable:
        return value if column in have else sql.SQL("NULL")

    query = sql.SQL(
        "SELECT id::text, {created}, {available}, currency::text, amount, fee, net, {kind}, "
        "{category}, {source}::text FROM {table} WHERE {created} >= %s AND {created} < %s "
        "ORDER BY {created}, id"
    ).format(
        created=epoch("created", have),
        available=optional("available_on", epoch("available_on", have)),
        kind=optional("type", sql.SQL("type::text")),
        category=optional("reporting_category", sql.SQL("reporting_category::text")),
        source=sql.Identifier(source),
        table=sql.Identifier(mirror.schema, "balance_transactions"),
    )
    names = ("id", "created", "available_on", "currency", "amount", "fee", "net", "type")
    names += ("reporting_category", "source")
    where = f"{mirror.schema}.balance_transactions"
    found = rows_of(mirror, query, [ceil_seconds(start), ceil_seconds(end)], "balance transactions")
    return pl.DataFrame(
        [checked(transaction_row, dict(zip(names, r, strict=True)), where) for r in found],
        schema=BALANCE_TRANSACTIONS_SCHEMA,
        orient="row",
    )
