"""Stripe mirrors in PostgreSQL for tests, the demo and benchmarks: the two layouts that
`sources/stripe_mirror.py` reads, filled from the same charge objects the local Stripe server
serves (so the API and the mirror can be compared)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import LiteralString

import psycopg
from psycopg import sql

LAYOUTS = ("data_pipeline", "sync_engine")
_DDL: dict[str, LiteralString] = {
    # Stripe Data Pipeline: API-named columns, created in epoch seconds,
    # _account_id/_updated_at/_raw_data.
    "data_pipeline": """
        CREATE TABLE {s}.charges (id text PRIMARY KEY, amount bigint, amount_captured bigint,
        amount_refunded bigint,
            captured boolean, created bigint, currency text, status text, payment_intent text,
            disputed boolean,
            paid boolean, refunded boolean, customer text, _account_id text, _updated_at
            timestamptz, _raw_data jsonb);
        CREATE INDEX ON {s}.charges (created);
        CREATE TABLE {s}.disputes (id text PRIMARY KEY, charge text, status text, reason text,
        amount bigint,
            created bigint, _account_id text, _updated_at timestamptz, _raw_data jsonb);
        CREATE TABLE {s}.payouts (id text PRIMARY KEY, amount bigint, arrival_date bigint, automatic
        boolean, created bigint,
            currency text, status text, failure_code text, trace_id jsonb, _account_id text,
            _updated_at timestamptz, _raw_data jsonb);
        CREATE TABLE {s}.balance_transactions (id text PRIMARY KEY, amount bigint, fee bigint, net
        bigint, currency text,
            type text, reporting_category text, source text, automatic_transfer_id text, created
            bigint, available_on bigint,
            _account_id text, _updated_at timestamptz, _raw_data jsonb);""",
    # stripe-sync-engine: API-named columns, no amount_captured, no disputed,
    # updated_at/last_synced_at.
    "sync_engine": """
        CREATE TABLE {s}.charges (id text PRIMARY KEY, object text, paid boolean, amount bigint,
        status text, created integer,
            captured boolean, currency text, customer text, refunded boolean, payment_intent text,
            amount_refunded bigint,
            updated_at timestamptz, last_synced_at timestamptz);
        CREATE INDEX ON {s}.charges (created);
        CREATE TABLE {s}.disputes (id text PRIMARY KEY, object text, amount bigint, charge text,
        reason text, status text,
            created integer, updated_at timestamptz, last_synced_at timestamptz);
        CREATE TABLE {s}.payouts (id text PRIMARY KEY, object text, amount bigint, status text,
        created integer, currency text,
            automatic boolean, arrival_date text, failure_code text, updated_at timestamptz,
            last_synced_at timestamptz);""",
}
_CHARGE_COLUMNS = {
    "data_pipeline": (
        "id",
        "amount",
        "amount_captured",
        "amount_refunded",
        "captured",
        "created",
        "currency",
        "status",
        "payment_intent",
        "disputed",
        "paid",
        "refunded",
        "customer",
        "_account_id",
        "_updated_at",
        "_raw_data",
    ),
    "sync_engine": (
        "id",
        "object",
        "paid",
        "amount",
        "status",
        "created",
        "captured",
        "currency",
        "customer",
        "refunded",
        "payment_intent",
        "amount_refunded",
        "updated_at",
        "last_synced_at",
    ),
}


def create_mirror(url: str, schema: str, layout: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL(_DDL[layout]).format(s=sql.Identifier(schema)))


def load_charges(
    url: str, schema: str, layout: str, charges: Iterable[dict], synced_at: datetime
) -> None:
    """Copy charge objects into the mirror as that layout keeps them, synced at `synced_at`."""
    rows = []
    for c in charges:
        row = {
            **c,
            "_account_id": "acct_local",
            "_updated_at": synced_at,
            "_raw_data": json.dumps(c),
            "updated_at": synced_at,
            "last_synced_at": synced_at,
            "object": "charge",
        }
        rows.append(tuple(row.get(name) for name in _CHARGE_COLUMNS[layout]))
    _copy(url, schema, "charges", _CHARGE_COLUMNS[layout], rows)


def load_disputes(
    url: str, schema: str, layout: str, disputes: Iterable[dict], synced_at: datetime
) -> None:
    columns = ("id", "charge", "status", "reason", "amount", "created") + (
        ("_account_id", "_updated_at")
        if layout == "data_pipeline"
        else ("updated_at", "last_synced_at")
    )
    rows = [
        tuple(
            {
                **d,
                "_account_id": "acct_local",
                "_updated_at": synced_at,
                "updated_at": synced_at,
                "last_synced_at": synced_at,
            }.get(c)
            for c in columns
        )
        for d in disputes
    ]
    _copy(url, schema, "disputes", columns, rows)


def load_payouts(
    url: str, schema: str, layout: str, payouts: Iterable[dict], synced_at: datetime
) -> None:
    """Payout objects as the layout keeps them (stripe-sync-engine: arrival_date as text, no
    trace_id)."""
    common = (
        "id",
        "amount",
        "status",
        "created",
        "currency",
        "automatic",
        "arrival_date",
        "failure_code",
    )
    if layout == "data_pipeline":
        columns = (*common, "trace_id", "_account_id", "_updated_at", "_raw_data")
        rows = [
            (
                *(p.get(c) for c in common[:-1]),
                p.get("failure_code"),
                json.dumps(p.get("trace_id")),
                "acct_local",
                synced_at,
                json.dumps(p),
            )
            for p in payouts
        ]
    else:
        columns = (*common, "updated_at", "last_synced_at")
        rows = [
            (
                *(str(p[c]) if c == "arrival_date" else p.get(c) for c in common),
                synced_at,
                synced_at,
            )
            for p in payouts
        ]
    _copy(url, schema, "payouts", columns, rows)


def load_balance_transactions(
    url: str, schema: str, transactions: Iterable[dict], synced_at: datetime, payout_field: str
) -> None:
    """Balance transactions, each with the payout that paid it out (`automatic_transfer_id`, read
    from `payout_field` of the local server's objects): Stripe Data Pipeline's layout only."""
    columns = (
        "id",
        "amount",
        "fee",
        "net",
        "currency",
        "type",
        "reporting_category",
        "source",
        "automatic_transfer_id",
        "created",
        "available_on",
        "_account_id",
        "_updated_at",
    )
    rows = [
        (
            t["id"],
            t["amount"],
            t["fee"],
            t["net"],
            t["currency"],
            t["type"],
            t["reporting_category"],
            t.get("source"),
            t.get(payout_field),
            t["created"],
            t.get("available_on", t["created"]),
            "acct_local",
            synced_at,
        )
        for t in transactions
    ]
    _copy(url, schema, "balance_transactions", columns, rows)


def _copy(url: str, schema: str, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        target = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with cur.copy(target) as copy:
            for row in rows:
                copy.write_row(row)
