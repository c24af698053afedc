"""Stripe charges from a mirror of Stripe in PostgreSQL, into the same frame the API gives.

Large accounts keep their Stripe data in PostgreSQL, kept current by Stripe itself or by a sync
tool; reading a day there is not bounded by Stripe's rate limit. Two layouts, told apart by the
`charges` table's columns:
- `data_pipeline`: Stripe Data Pipeline's real-time sync. API-named columns, `created` as epoch
  seconds, plus `_account_id`, `_updated_at`, `_raw_data`.
- `sync_engine`: the open-source stripe-sync-engine. API-named columns, `created` as epoch
  seconds, no `amount_captured` (a captured charge captured its `amount`), plus
  `updated_at` / `last_synced_at`.
A day is read with `created` filtered in SQL (its index) through `COPY`, validated column-wise
with the API source's rules (a bad row becomes an invalid row naming the column), and the day's
disputed charges get their disputes from the mirror's `disputes` table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import LiteralString

import polars as pl
import psycopg
from psycopg import sql

from recon_dagster.core.frames import CHARGES_SCHEMA
from recon_dagster.money import ISO_CODES
from recon_dagster.settings import ConfigError, redact_url, scrub
from recon_dagster.sources.invalid_rows import mark_first_failure
from recon_dagster.sources.stripe_disputes import DISPUTE_COLUMNS, attach_disputes

SOURCE_VARIABLE = "RECON_STRIPE_SOURCE"
_SYNC_COLUMNS = {"data_pipeline": ("_updated_at",), "sync_engine": ("last_synced_at", "updated_at")}
_RAW = pl.Schema(
    {
        "id": pl.String(),
        "amount": pl.String(),
        "amount_captured": pl.String(),
        "amount_refunded": pl.String(),
        "currency": pl.String(),
        "status": pl.String(),
        "paid": pl.String(),
        "captured": pl.String(),
        "refunded": pl.String(),
        "created": pl.String(),
        "payment_intent": pl.String(),
        "customer": pl.String(),
        "disputed": pl.String(),
    }
)


@dataclass(frozen=True)
class Mirror:
    """Where the mirror is, and which layout its `charges` table has."""

    url: str
    schema: str
    layout: str  # data_pipeline | sync_engine
    columns: dict[str, str]  # charges' columns -> types
    has_disputes: bool = False  # a `disputes` table beside `charges`

    @property
    def sync_column(self) -> str:
        column = self.sync_column_of(self.columns)
        assert column is not None  # detect() found the layout by this very column
        return column

    def sync_column_of(self, columns: dict[str, str]) -> str | None:
        """The column of a table of this mirror that says when a row was last synced, if it has
        one."""
        return next((c for c in _SYNC_COLUMNS[self.layout] if c in columns), None)


@dataclass(frozen=True)
class SyncStatus:
    """How current the mirror is: its newest sync time and its newest charge."""

    synced_at: datetime | None
    newest_created: datetime | None


def connect(url: str) -> psycopg.Connection:
    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        raise ConfigError(
            SOURCE_VARIABLE,
            f"cannot connect to the Stripe mirror at {redact_url(url)} ({scrub(exc, url)})",
        ) from None


# A run asks for the mirror's layout in every step; one look per half minute serves them all
# (a layout found is cached, an error never is).
_LAYOUT_TTL_SECONDS = 30.0
_layout_cache: dict[tuple[str, str], tuple[float, Mirror]] = {}


def detect(url: str, schema: str) -> Mirror:
    """The mirror's layout, from its `charges` table's columns; a clear error when it is neither."""
    cached = _layout_cache.get((url, schema))
    if cached is not None and time.monotonic() - cached[0] < _LAYOUT_TTL_SECONDS:
        return cached[1]
    mirror = _detect(url, schema)
    _layout_cache[(url, schema)] = (time.monotonic(), mirror)
    return mirror


def _detect(url: str, schema: str) -> Mirror:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'charges'",
            [schema],
        ).fetchall()
        has_disputes = (
            conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = "
                "'disputes'",
                [schema],
            ).fetchone()
            is not None
        )
    columns = {name: kind.lower() for name, kind in rows}
    if not columns:
        raise ConfigError(
            "RECON_STRIPE_MIRROR_SCHEMA",
            f"no table {schema}.charges in the Stripe mirror at {redact_url(url)}",
        )
    for layout, marks in _SYNC_COLUMNS.items():
        if any(m in columns for m in marks):
            missing = [
                c
                for c in (
                    "id",
                    "amount",
                    "amount_refunded",
                    "currency",
                    "status",
                    "captured",
                    "created",
                )
                if c not in columns
            ]
            if missing:
                raise ConfigError(
                    "RECON_STRIPE_MIRROR_SCHEMA",
                    f"{schema}.charges lacks column(s) {', '.join(missing)}",
                )
            return Mirror(
                url=url, schema=schema, layout=layout, columns=columns, has_disputes=has_disputes
            )
    raise ConfigError(
        "RECON_STRIPE_MIRROR_SCHEMA",
        f"{schema}.charges is neither Stripe Data Pipeline's layout (_updated_at) "
        "nor stripe-sync-engine's (last_synced_at / updated_at)",
    )


def fetch_charges(mirror: Mirror, start: datetime, end: datetime) -> pl.DataFrame:
    """Charges created in [start, end), as `CHARGES_SCHEMA`, their disputes attached."""
    low, high = (
        int(start.timestamp()),
        int(end.timestamp()) + (0 if end.timestamp().is_integer() else 1),
    )
    where = sql.SQL("WHERE {created} >= {low} AND {created} < {high}").format(
        created=_created(mirror), low=sql.Literal(low), high=sql.Literal(high)
    )
    with connect(mirror.url) as conn:
        utc = (start.astimezone(UTC), end.astimezone(UTC))
        in_window = pl.col("created").is_null() | pl.col("created").is_between(*utc, closed="left")
        frame = pl.concat(
            [
                _validate(raw).filter(in_window)
                for raw in _copy(conn, sql.SQL(" ").join([_select(mirror), where]))
            ],
            rechunk=False,
        )
        disputed = (
            frame.filter(pl.col("disputed").fill_null(False))
            .get_column("id")
            .drop_nulls()
            .to_list()
        )
        disputes = (
            _disputes(conn, mirror, disputed) if disputed else pl.DataFrame(schema=DISPUTE_COLUMNS)
        )
    return attach_disputes(frame, disputes)


def fetch_by(mirror: Mirror, column: str, values: list[str]) -> pl.DataFrame:
    """Charges whose `column` (id or payment_intent) is one of `values`, whenever created."""
    if not values:
        return _validate(pl.DataFrame(schema=_RAW))
    where = sql.SQL("WHERE {}::text = ANY(%s)").format(sql.Identifier(column))
    with connect(mirror.url) as conn, conn.cursor() as cur:
        rows = cur.execute(sql.SQL(" ").join([_select(mirror), where]), [values]).fetchall()
    return _validate(
        pl.DataFrame(
            [[None if v is None else str(v) for v in r] for r in rows], schema=_RAW, orient="row"
        )
    )


# The newest sync time is a max over the whole table (no index to serve it): one scan serves the
# steps of a run that ask within a few seconds of each other.
_STATUS_TTL_SECONDS = 30.0
_status_cache: dict[tuple[str, str], tuple[float, SyncStatus]] = {}


def sync_status(mirror: Mirror) -> SyncStatus:
    key = (mirror.url, mirror.schema)
    cached = _status_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < _STATUS_TTL_SECONDS:
        return cached[1]
    status = _read_status(mirror)
    _status_cache[key] = (time.monotonic(), status)
    return status


def _read_status(mirror: Mirror) -> SyncStatus:
    with connect(mirror.url) as conn:
        query = sql.SQL("SELECT max({sync}), max({created}) FROM {table}").format(
            sync=sql.Identifier(mirror.sync_column),
            created=_created(mirror),
            table=sql.Identifier(mirror.schema, "charges"),
        )
        synced, created = conn.execute(query).fetchone() or (None, None)
    if isinstance(synced, (int, float)):  # some tools keep epoch seconds
        synced = datetime.fromtimestamp(synced, UTC)
    elif isinstance(synced, datetime) and synced.tzinfo is None:
        synced = synced.replace(tzinfo=UTC)
    return SyncStatus(
        synced_at=synced,
        newest_created=datetime.fromtimestamp(created, UTC) if created is not None else None,
    )


def synced_since(mirror: Mirror, since: datetime) -> tuple[list[tuple[str, int]], datetime | None]:
    """(charge id, created) of the rows synced after `since`, and the newest sync time among them:
    a late change in a mirror is a row copied again after the day was reported."""
    with connect(mirror.url) as conn:
        query = sql.SQL("SELECT id::text, {created}, {sync} FROM {table} WHERE {sync} > %s").format(
            created=_created(mirror),
            sync=sql.Identifier(mirror.sync_column),
            table=sql.Identifier(mirror.schema, "charges"),
        )
        rows = conn.execute(query, [since]).fetchall()
    newest = max((r[2] for r in rows), default=None)
    if isinstance(newest, datetime) and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return [(r[0], r[1]) for r in rows], newest


def _created(mirror: Mirror) -> sql.Composable:
    """`created` as epoch seconds, whether the column keeps them or a timestamp."""
    if mirror.columns["created"].startswith("timestamp"):
        return sql.SQL("EXTRACT(EPOCH FROM {})::bigint").format(sql.Identifier("created"))
    return sql.Identifier("created")


def _select(mirror: Mirror) -> sql.Composed:
    have = mirror.columns

    def col(name: str, fallback: LiteralString | sql.Composable = "NULL") -> sql.Composable:
        if name in have:
            return sql.SQL("{}::text").format(sql.Identifier(name))
        return sql.SQL("({})::text").format(
            fallback if isinstance(fallback, sql.Composable) else sql.SQL(fallback)
        )

    parts = [
        col("id"),
        col("amount"),
        col(
            "amount_captured", "CASE WHEN captured THEN amount ELSE 0 END"
        ),  # sync_engine: a capture takes the amount
        col("amount_refunded"),
        col("currency"),
        col("status"),
        col("paid", "status = 'succeeded'"),
        col("captured"),
        col("refunded", "amount_refunded > 0 AND amount_refunded >= amount"),
        sql.SQL("{}::text").format(_created(mirror)),
        col("payment_intent"),
        col("customer"),
        # Without a `disputed` column (stripe-sync-engine), a charge is disputed when a dispute
        # names it.
        col(
            "disputed",
            sql.SQL("EXISTS (SELECT 1 FROM {} d WHERE d.charge = charges.id)").format(
                sql.Identifier(mirror.schema, "disputes")
            )
            if mirror.has_disputes
            else "false",
        ),
    ]
    return sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(parts), sql.Identifier(mirror.schema, "charges")
    )


# CSV bytes parsed at a time: a 10M-charge day is ~1 GB of CSV, never held whole, nor as 10M
# rows of text.
COPY_BATCH_BYTES = 64 << 20


def _copy(conn: psycopg.Connection, query: sql.Composable) -> Iterator[pl.DataFrame]:
    """The query's rows as raw (all-text) frames of about `COPY_BATCH_BYTES` of CSV each, cut
    at row ends (`_row_end`)."""
    pending = bytearray()
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)) as copy,
    ):
        for chunk in copy:
            pending += chunk
            if len(pending) >= COPY_BATCH_BYTES and (cut := _row_end(pending)):
                yield _parse_csv(bytes(pending[:cut]))
                del pending[:cut]
    yield _parse_csv(bytes(pending))  # the rest; an empty day is one empty frame


def _row_end(data: bytearray) -> int:
    """Just past the last line end that ends a row, or 0. PostgreSQL quotes a field holding a
    line break, and quotes come in pairs (a quote inside a field is doubled): a line end with an
    odd number of quotes before it is inside a field."""
    end = len(data)
    while (line_end := data.rfind(b"\n", 0, end)) >= 0:
        if data.count(b'"', 0, line_end) % 2 == 0:
            return line_end + 1
        end = line_end
    return 0


def _parse_csv(data: bytes) -> pl.DataFrame:
    return pl.read_csv(data, has_header=False, schema=_RAW, raise_if_empty=False)


def _validate(raw: pl.DataFrame) -> pl.DataFrame:
    """The API source's rules, column-wise: the first broken field of a row makes it invalid."""
    text = raw.select(pl.all().name.prefix("_text_"))
    integer = {
        n: pl.col(n).cast(pl.Int64, strict=False)
        for n in ("amount", "amount_captured", "amount_refunded", "created")
    }
    flag = {
        n: pl.col(n).replace_strict(
            {"true": True, "t": True, "false": False, "f": False},
            default=None,
            return_dtype=pl.Boolean,
        )
        for n in ("paid", "captured", "refunded", "disputed")
    }
    frame = pl.concat([raw, text], how="horizontal").with_columns(
        **integer, **flag, currency=pl.col("currency").str.to_uppercase()
    )
    rules = [
        ("id", pl.col("id").is_null() | (pl.col("id") == ""), "a charge id such as ch_..."),
        *(
            (
                n,
                pl.col(n).is_null() | (pl.col(n) < 0),
                "a non-negative integer number of minor units",
            )
            for n in ("amount", "amount_captured", "amount_refunded")
        ),
        (
            "amount_captured",
            pl.col("amount_captured") > pl.col("amount"),
            "at most the charge amount",
        ),
        (
            "amount_refunded",
            pl.col("amount_refunded") > pl.col("amount"),
            "at most the charge amount",
        ),
        (
            "currency",
            ~pl.col("currency").is_in(sorted(ISO_CODES)).fill_null(False),
            "an ISO 4217 currency code",
        ),
        ("created", pl.col("created").is_null(), "a Unix timestamp in whole seconds"),
        ("status", pl.col("status").is_null(), "a string such as succeeded"),
        *((n, pl.col(n).is_null(), "true or false") for n in ("paid", "captured", "refunded")),
    ]
    checks = [
        (
            broken.fill_null(True),
            name,
            pl.format(
                f"Stripe mirror charge {{}}: {name!r} is {{}}, expected {expected}",
                pl.col("id").fill_null("(no id)"),
                pl.col(f"_text_{name}").fill_null("null"),
            ),
        )
        for name, broken, expected in rules
    ]
    frame = mark_first_failure(frame, checks).with_columns(
        disputed=pl.col("disputed").fill_null(False)
    )
    frame = frame.with_columns(
        created=(pl.col("created") * 1_000_000).cast(CHARGES_SCHEMA["created"]),
        **{n: pl.lit(None, CHARGES_SCHEMA[n]) for n in DISPUTE_COLUMNS if n != "id"},
    )
    return frame.select(list(CHARGES_SCHEMA)).cast(CHARGES_SCHEMA)


def _disputes(conn: psycopg.Connection, mirror: Mirror, charge_ids: list[str]) -> pl.DataFrame:
    if not mirror.has_disputes:
        return pl.DataFrame(schema=DISPUTE_COLUMNS)
    query = sql.SQL(
        "SELECT charge::text, id::text, status::text, reason::text, amount::bigint FROM {} WHERE "
        "charge::text = ANY(%s)"
    ).format(sql.Identifier(mirror.schema, "disputes"))
    rows = conn.execute(query, [charge_ids]).fetchall()
    return pl.DataFrame(rows, schema=DISPUTE_COLUMNS, orient="row").unique(
        "id", keep="last", maintain_order=True
    )
