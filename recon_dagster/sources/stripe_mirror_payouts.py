"""Stripe payouts, and the balance transactions they paid out, from the Stripe mirror in PostgreSQL.

Both layouts keep a `payouts` table with API-named columns (stripe-sync-engine keeps
`arrival_date` as epoch text and has no `trace_id`). Only Stripe Data Pipeline keeps balance
transactions (`balance_transactions`, the automatic payout that paid each one out named by
`automatic_transfer_id`, Sigma's name, or `payout`); without one, `PayoutTables.transactions_table`
is False and the caller lists them through the API. Rows are shaped as the API's objects and go
through the API source's own row checks, so a broken mirror row fails exactly as a broken API
object would, naming the row and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
import psycopg
from psycopg import sql

from recon_dagster.core.payout_frames import PAYOUT_TRANSACTIONS_SCHEMA, PAYOUTS_SCHEMA
from recon_dagster.settings import ConfigError, redact_url, scrub
from recon_dagster.sources.stripe_client import StripeDataError, StripeUnavailableError
from recon_dagster.sources.stripe_mirror import Mirror, connect
from recon_dagster.sources.stripe_payouts import payout_row, transaction_row

_LINKS = ("automatic_transfer_id", "payout")  # the payout a balance transaction was paid out in
_SOURCES = ("source", "source_id")


@dataclass(frozen=True)
class PayoutTables:
    """The mirror's `payouts` and `balance_transactions` columns (name -> type); None when
    absent."""

    payouts: dict[str, str] | None
    transactions: dict[str, str] | None

    @property
    def transactions_table(self) -> bool:
        t = self.transactions
        return t is not None and any(c in t for c in _LINKS) and any(c in t for c in _SOURCES)


def describe(mirror: Mirror) -> PayoutTables:
    with connect(mirror.url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE "
            "table_schema = %s AND table_name IN ('payouts', 'balance_transactions')",
            [mirror.schema],
        ).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        tables.setdefault(table, {})[column] = kind.lower()
    return PayoutTables(
        payouts=tables.get("payouts"), transactions=tables.get("balance_transactions")
    )


def fetch_payouts(mirror: Mirror, tables: PayoutTables, first: date, last: date) -> pl.DataFrame:
    """Payouts arriving from `first` to `last` (inclusive UTC dates), as `PAYOUTS_SCHEMA`."""
    have = tables.payouts
    if have is None:
        raise ConfigError(
            "RECON_STRIPE_MIRROR_SCHEMA",
            f"the Stripe mirror has no table {mirror.schema}.payouts to read payouts from",
        )
    low = int(datetime.combine(first, time(0), tzinfo=UTC).timestamp())
    high = int(datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC).timestamp())
    trace = (
        sql.SQL("NULL")
        if "trace_id" not in have
        else sql.SQL("trace_id->>'value'")
        if have["trace_id"] == "jsonb"
        else sql.SQL("trace_id::text")
    )
    arrival = epoch("arrival_date", have)
    query = sql.SQL(
        "SELECT id::text, amount, currency::text, {arrival}, status::text, automatic, {failure}, "
        "{trace}, {created} FROM {table} WHERE {arrival} >= %s AND {arrival} < %s ORDER BY id"
    ).format(
        arrival=arrival,
        created=epoch("created", have),
        trace=trace,
        table=sql.Identifier(mirror.schema, "payouts"),
        failure=sql.SQL("failure_code::text") if "failure_code" in have else sql.SQL("NULL"),
    )
    rows = rows_of(mirror, query, [low, high], "payouts")
    names = (
        "id",
        "amount",
        "currency",
        "arrival_date",
        "status",
        "automatic",
        "failure_code",
        "trace_id",
        "created",
    )
    return pl.DataFrame(
        [
            checked(payout_row, dict(zip(names, r, strict=True)), f"{mirror.schema}.payouts")
            for r in rows
        ],
        schema=PAYOUTS_SCHEMA,
        orient="row",
    )


def fetch_payout_transactions(
    mirror: Mirror, tables: PayoutTables, payout_ids: list[str]
) -> pl.DataFrame:
    """The balance transactions these payouts paid out, as `PAYOUT_TRANSACTIONS_SCHEMA`, each
    charge's PaymentIntent joined from the mirror's `charges`."""
    have = tables.transactions
    if have is None or not tables.transactions_table:
        raise ConfigError(
            "RECON_STRIPE_MIRROR_SCHEMA",
            f"the Stripe mirror has no {mirror.schema}.balance_transactions table "
            f"naming each transaction's payout ({' or '.join(_LINKS)})",
        )
    link = next(c for c in _LINKS if c in have)
    source = next(c for c in _SOURCES if c in have)
    intent = (
        sql.SQL("c.payment_intent::text") if "payment_intent" in mirror.columns else sql.SQL("NULL")
    )
    query = sql.SQL(
        "SELECT t.id::text, t.{link}::text, t.amount, t.fee, t.net, t.currency::text, "
        "t.type::text, {category}, "
        "t.{source}::text, {created}, c.id IS NOT NULL, {intent} FROM {table} t LEFT JOIN "
        "{charges} c ON c.id = t.{source} "
        "WHERE t.{link}::text = ANY(%s) ORDER BY t.{link}, t.id"
    ).format(
        link=sql.Identifier(link),
        source=sql.Identifier(source),
        intent=intent,
        category=sql.SQL("t.reporting_category::text")
        if "reporting_category" in have
        else sql.SQL("NULL"),
        created=epoch("created", have, "t"),
        table=sql.Identifier(mirror.schema, "balance_transactions"),
        charges=sql.Identifier(mirror.schema, "charges"),
    )
    rows = (
        rows_of(mirror, query, [list(dict.fromkeys(payout_ids))], "balance transactions")
        if payout_ids
        else []
    )
    out = []
    for (
        tid,
        payout,
        amount,
        fee,
        net,
        currency,
        kind,
        category,
        src,
        created,
        is_charge,
        pi,
    ) in rows:
        txn = {
            "id": tid,
            "amount": amount,
            "fee": fee,
            "net": net,
            "currency": currency,
            "type": kind,
            "reporting_category": category,
            "created": created,
            "source": {"id": src, "object": "charge", "payment_intent": pi} if is_charge else src,
        }
        out.append(
            checked(
                lambda t, p=payout: transaction_row(t, p),
                txn,
                f"{mirror.schema}.balance_transactions",
            )
        )
    return pl.DataFrame(out, schema=PAYOUT_TRANSACTIONS_SCHEMA, orient="row")


def synced_since(
    mirror: Mirror, tables: PayoutTables, since: datetime
) -> tuple[list[tuple[str, date]], datetime | None]:
    """(payout id, arrival date) of the payouts synced after `since`, and the newest sync time
    among them; nothing without a payouts table that records its sync time."""
    have = tables.payouts or {}
    sync = mirror.sync_column_of(have)
    if sync is None:
        return [], None
    query = sql.SQL("SELECT id::text, {arrival}, {sync} FROM {table} WHERE {sync} > %s").format(
        arrival=epoch("arrival_date", have),
        sync=sql.Identifier(sync),
        table=sql.Identifier(mirror.schema, "payouts"),
    )
    rows = rows_of(mirror, query, [since], "synced payouts")
    newest = max((r[2] for r in rows), default=None)
    if isinstance(newest, datetime) and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return [
        (pid, datetime.fromtimestamp(arrival, UTC).date())
        for pid, arrival, _ in rows
        if arrival is not None
    ], newest


def payouts_synced_since(
    mirror: Mirror, since: datetime
) -> tuple[list[tuple[str, date]], datetime | None]:
    """`synced_since` over the mirror's own payout tables."""
    return synced_since(mirror, describe(mirror), since)


def rows_of(mirror: Mirror, query: sql.Composed, params: list, what: str) -> list[tuple]:
    """The query's rows; a database failure becomes an unavailable source naming the mirror (no
    password)."""
    with connect(mirror.url) as conn:
        try:
            return conn.execute(query, params).fetchall()
        except psycopg.Error as exc:
            raise StripeUnavailableError(
                f"Reading the {what} of the Stripe mirror at {redact_url(mirror.url)} failed: "
                f"{scrub(exc, mirror.url)}"
            ) from None


def epoch(column: str, have: dict[str, str], alias: str | None = None) -> sql.Composable:
    """Epoch seconds from a column kept as a timestamp, a number or (stripe-sync-engine) text; text
    that is not an integer becomes NULL, which the row checks name."""
    ref = sql.Identifier(alias, column) if alias else sql.Identifier(column)
    kind = have.get(column, "")
    if kind.startswith("timestamp"):
        return sql.SQL("EXTRACT(EPOCH FROM {})::bigint").format(ref)
    if kind in ("text", "character varying"):
        return sql.SQL("(CASE WHEN {0} ~ '^-?[0-9]+$' THEN {0}::bigint END)").format(ref)
    return ref


def checked(row_of, obj: dict, where: str) -> tuple:
    try:
        return row_of(obj)
    except StripeDataError as exc:
        raise StripeDataError(f"Stripe mirror {where}: {exc}", field=exc.field) from None
