"""The report store: every reconciled day (or range) kept in DuckDB or PostgreSQL.

Why it exists: Dagster runs, the CLI and trend checks all need yesterday's answer without
re-running the reconciliation, and people want to query findings with plain SQL.

Tables (created by the versioned migrations of migrations.py):
  reconciliation_reports         one row per version of (date, end_date): re-running a day adds
                                 version max+1 with its `trigger` and `run_id`, the highest is
                                 current; headline money as BIGINT minor units plus DECIMAL(38,4)
                                 major units; `details` JSON.
  reconciliation_line_items      one row per `Finding` of a report id, for SQL (by day, by payment
  id).
  reconciliation_currency_totals one row per `CurrencyTotals` of a report id.
  sync_audit                     what a sync did (or would have done) per payment.

Rebuild decision: `details` holds `result.to_json_dict()` (the human/CLI shape, major units)
plus `details["_record"]`, the lossless minor-unit `result.to_record()` (dates as ISO strings,
non-finite floats as strings). `latest()` rebuilds the result from `_record` alone; the line-item
and totals tables are derived copies for querying, written in the same transaction.

Versions (issue 15): auditors must see what a day said before it was re-run, so nothing is
replaced. `versions()` lists them with what changed; triggers and diffs live in report_versions.py.

DuckDB allows one writer process per file, so connections are opened per operation and
connecting retries with backoff while another process holds the lock.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from recon_dagster.core.result import CLASSES, CurrencyTotals, Finding, ReconciliationResult
from recon_dagster.money import exponent, to_major
from recon_dagster.settings import redact_url
from recon_dagster.stores.migrations import (
    CURRENCY_TOTALS as _C,
    LINE_ITEMS as _L,
    MIGRATIONS,
    REPORTS as _R,
    SYNC_AUDIT as _S,
)
from recon_dagster.stores.report_versions import changes, describe, trigger_for_save

_LINE_COLUMNS = (
    "report_id",
    "position",
    "date",
    "end_date",
    "kind",
    "payment_id",
    "currency",
    "stripe_amount",
    "database_amount",
    "difference",
    "stripe_amount_major",
    "database_amount_major",
    "difference_major",
    "stripe_status",
    "database_status",
    "detail",
    "database_id",
    "dispute_id",
    "dispute_status",
    "source",
    "invalid_column",
)
_MONEY = ("stripe_total", "database_total", "discrepancy", "gross_discrepancy")
# A report's summary columns, as history() and versions() read them.
_SUMMARY = (
    "id",
    "date",
    "end_date",
    "version",
    "trigger",
    "timezone",
    "status",
    "currency",
    *_MONEY,
    *(f"{m}_minor" for m in _MONEY),
    "discrepancy_percentage",
    "gross_discrepancy_percentage",
    "tolerance_percentage",
    "include_refunds",
    "stripe_count",
    "database_count",
    "error",
    "source",
    "run_id",
    "created_at",
)
_SYNC_COLUMNS = (
    "id",
    "seq",
    "at",
    "run_id",
    "payment_id",
    "action",
    "result",
    "reason",
    "dry_run",
    "date",
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_DUCK_LOCKS: dict[str, threading.Lock] = {}
_DUCK_LOCKS_GUARD = threading.Lock()


class ReportStoreError(RuntimeError):
    """The store cannot be reached or used; the message never carries a password."""


@dataclass(frozen=True)
class _Dialect:
    name: str
    json: str
    double: str


_DUCK = _Dialect("duckdb", "JSON", "DOUBLE")
_PG = _Dialect("postgresql", "JSONB", "DOUBLE PRECISION")


class ReportStore:
    """Saves and reads reconciliation results; see the module docstring for the layout."""

    def __init__(self, url: str, *, schema: str | None = None, lock_timeout: float = 30.0):
        self.url = url
        self.lock_timeout = lock_timeout
        if url.startswith("duckdb:///"):
            raw = url[len("duckdb:///") :]
            if not raw:
                raise ReportStoreError(
                    "a duckdb report store URL needs a file path: duckdb:////abs/recon.duckdb"
                )
            self.dialect, self.path = _DUCK, Path(raw).resolve()
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect, self.path = _PG, None
            schema = schema or _schema_from_options(url)
        else:
            raise ReportStoreError(
                f"unsupported report store URL {redact_url(url)!r}: use duckdb:/// or postgresql://"
            )
        if schema is not None and not _IDENT.match(schema):
            raise ReportStoreError(
                f"{schema!r} is not a valid schema name (letters, digits, underscores)"
            )
        self.schema = schema
        self._prefix = f'"{schema}".' if schema else ""
        self._migrated = False

    def __repr__(self) -> str:
        return f"ReportStore({redact_url(self.url)!r}, schema={self.schema!r})"

    # -- connections ----------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[_Session]:
        """One transaction on a fresh connection: committed on success, rolled back otherwise,
        always closed. DuckDB writers in this process are serialised per file."""
        if self.dialect is _PG:
            import psycopg

            try:
                conn = psycopg.connect(self.url)
            except psycopg.Error as exc:
                raise ReportStoreError(
                    f"cannot connect to report store {redact_url(self.url)}: {exc}"
                ) from None
            with conn:  # commits, or rolls back on exception, then closes
                yield _Session(self, conn)
            return
        with _duck_lock(self.path):
            conn = self._duck_connect()
            try:
                conn.execute("BEGIN TRANSACTION")
                yield _Session(self, conn)
                conn.execute("COMMIT")
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except Exception:
                    pass
                raise
            finally:
                conn.close()

    def _duck_connect(self):
        """Connect, retrying with backoff while another process holds the file's write lock."""
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline, delay = time.monotonic() + self.lock_timeout, 0.05
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise ReportStoreError(f"cannot open report store {self.path}: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _sql(self, sql: str) -> str:
        return sql.replace("{s}", self._prefix)

    def _ensure(self) -> None:
        if not self._migrated:
            self.migrate()

    # -- migrations -----------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply pending migrations in one transaction; returns the versions applied now.
        On PostgreSQL an advisory lock makes concurrent callers wait, then find nothing to do."""
        d = self.dialect
        with self._tx() as s:
            if d is _PG:
                s.run("SELECT pg_advisory_xact_lock(?)", (_lock_key("migrate", self.schema or ""),))
            if self.schema:
                s.run(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            s.run(
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {s}recon_schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
            )
            done = {
                row[0] for row in s.run(self._sql("SELECT version FROM {s}recon_schema_migrations"))
            }
            applied = []
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements[d.name] if isinstance(statements, dict) else statements:
                    s.run(
                        self._sql(statement.replace("{json}", d.json).replace("{double}", d.double))
                    )
                s.run(
                    self._sql("INSERT INTO {s}recon_schema_migrations (version) VALUES (?)"),
                    (version,),
                )
                applied.append(version)
        self._migrated = True
        return applied

    # -- reports --------------------------------------------------------------------------------
    def save(
        self,
        result: ReconciliationResult,
        *,
        source: str = "dagster",
        run_id: str | None = None,
        trigger: str | None = None,
    ) -> str:
        """Store the next version of (result.date, result.end_date) in one transaction; returns its
        id. `source` is who saved (dagster, cli, api); `trigger` what started it (see
        report_versions: default `source` for cli/api, else `manual`). Earlier versions are kept."""
        trigger = trigger_for_save(trigger, source)
        self._ensure()
        report_id, cur = str(uuid.uuid4()), result.currency
        key = (result.date, result.end_date)

        def major(minor: int | None, currency: str | None) -> Decimal | None:
            return (
                None if minor is None or not currency else to_major(minor, currency)
            )  # "": an invalid row

        details = _jsonable(
            {**result.to_json_dict(), "_record": {"version": 1, **result.to_record()}}
        )
        report = (
            report_id,
            result.date,
            result.end_date,
            result.timezone,
            cur,
            major(result.stripe_total, cur) or Decimal(0),
            major(result.database_total, cur) or Decimal(0),
            major(result.discrepancy, cur) or Decimal(0),
            result.stripe_total,
            result.database_total,
            result.discrepancy,
            float(result.discrepancy_percentage),
            major(result.gross_discrepancy, cur) or Decimal(0),
            result.gross_discrepancy,
            float(result.gross_discrepancy_percentage),
            float(result.tolerance_percentage),
            bool(result.include_refunds),
            result.stripe_count,
            result.database_count,
            result.status,
            result.error,
            json.dumps(details, allow_nan=False),
            source,
            run_id,
            trigger,
        )
        lines = [
            (
                report_id,
                i,
                *key,
                f.kind,
                f.payment_id,
                f.currency,
                f.stripe_amount,
                f.database_amount,
                f.difference,
                major(f.stripe_amount, f.currency),
                major(f.database_amount, f.currency),
                None if f.kind == "currency_mismatches" else major(f.difference, f.currency),
                f.stripe_status,
                f.database_status,
                f.detail,
                f.database_id,
                f.dispute_id,
                f.dispute_status,
                f.source,
                f.column,
            )
            for i, f in enumerate(result.findings)
        ]
        totals = [
            (
                report_id,
                *key,
                t.currency,
                t.stripe_total,
                t.database_total,
                t.discrepancy,
                t.gross_discrepancy,
                to_major(t.stripe_total, t.currency),
                to_major(t.database_total, t.currency),
                to_major(t.discrepancy, t.currency),
                to_major(t.gross_discrepancy, t.currency),
                t.stripe_count,
                t.database_count,
                float(t.discrepancy_percentage),
                float(t.gross_discrepancy_percentage),
                t.disputes_lost,
                t.disputes_open,
            )
            for t in result.totals
        ]
        with self._tx() as s:
            # Two savers of one day must not both read max = n and both write n + 1. PostgreSQL:
            # they queue on an advisory lock per day, held to commit, so the second reads the
            # first's row (READ COMMITTED reads afresh per statement). DuckDB: writers in this
            # process hold `_duck_lock`, and another process cannot open the file while this one has
            # it. The UNIQUE (date, end_date, version) constraint backs both up.
            if self.dialect is _PG:
                s.run(
                    "SELECT pg_advisory_xact_lock(?)",
                    (_lock_key("save", self.schema or "", *map(str, key)),),
                )
            [(version,)] = s.run(
                self._sql(
                    f"SELECT COALESCE(MAX(version), 0) + 1 FROM {{s}}{_R} "
                    "WHERE date = ? AND end_date = ?"
                ),
                key,
            )
            s.run(
                self._sql(
                    f"INSERT INTO {{s}}{_R} (id, date, end_date, timezone, currency, stripe_total, "
                    "database_total, discrepancy, stripe_total_minor, database_total_minor, "
                    "discrepancy_minor, "
                    "discrepancy_percentage, gross_discrepancy, gross_discrepancy_minor, "
                    "gross_discrepancy_percentage, tolerance_percentage, include_refunds, "
                    "stripe_count, "
                    "database_count, status, error, details, source, run_id, trigger, version) "
                    "VALUES "
                    f"({', '.join(['?'] * 21)}, CAST(? AS {self.dialect.json}), ?, ?, ?, ?)"
                ),
                (*report, version),
            )
            s.bulk(_L, _LINE_COLUMNS, lines)
            if totals:
                s.many(self._sql(f"INSERT INTO {{s}}{_C} VALUES ({', '.join(['?'] * 18)})"), totals)
        return report_id

    def save_error(
        self,
        start: date,
        end: date,
        timezone: str,
        message: str,
        *,
        tolerance: float,
        include_refunds: bool,
        source: str = "dagster",
        run_id: str | None = None,
        trigger: str | None = None,
    ) -> str:
        """Record, as the next version, that the range could not be reconciled (status `error`);
        `message` is stored as given, so callers pass text that is already free of secrets."""
        failed = ReconciliationResult.failed(
            start, end, timezone, message, tolerance=tolerance, include_refunds=include_refunds
        )
        return self.save(failed, source=source, run_id=run_id, trigger=trigger)

    def latest(self, date: date, end_date: date | None = None) -> ReconciliationResult | None:
        """The current (highest) version for (date, end_date or date), rebuilt losslessly, or None."""
        self._ensure()
        with self._tx() as s:
            rows = s.run(
                self._sql(
                    f"SELECT details FROM {{s}}{_R} WHERE date = ? AND end_date = ? "
                    "ORDER BY version DESC LIMIT 1"
                ),
                (date, end_date or date),
            )
        if not rows:
            return None
        return _rebuild(_details(rows[0][0])["_record"])

    def last_two(self, date: date) -> list[tuple[ReconciliationResult, str | None, str | None]]:
        """The day's current and previous versions (newest first, at most two), each with its
        trigger and run id: what a late change did to the day."""
        self._ensure()
        with self._tx() as s:
            rows = s.run(
                self._sql(
                    f"SELECT details, trigger, run_id FROM {{s}}{_R} WHERE date = ? AND end_date = "
                    "? "
                    "ORDER BY version DESC LIMIT 2"
                ),
                (date, date),
            )
        return [(_rebuild(_details(d)["_record"]), trigger, run_id) for d, trigger, run_id in rows]

    def history(self, start: date | None = None, end: date | None = None) -> list[dict[str, Any]]:
        """The current version of each report whose first day is within [start, end], newest day
        first: money as exact `Decimal` major units (scaled to the currency's decimals) and minor
        ints, counts per class, `version` and `trigger`. Every version: `versions()`."""
        self._ensure()
        cond, params = _within(start, end)
        cond += (
            f" AND r.version = (SELECT MAX(x.version) FROM {{s}}{_R} x "
            "WHERE x.date = r.date AND x.end_date = r.end_date)"
        )
        with self._tx() as s:
            rows = s.run(
                self._sql(
                    f"SELECT {', '.join('r.' + c for c in _SUMMARY)} FROM {{s}}{_R} r WHERE {cond} "
                    "ORDER BY r.date DESC, r.end_date DESC"
                ),
                params,
            )
            counted = s.run(
                self._sql(
                    f"SELECT r.id, l.kind, count(*) FROM {{s}}{_R} r JOIN {{s}}{_L} l "
                    f"ON l.report_id = r.id WHERE {cond} GROUP BY r.id, l.kind"
                ),
                params,
            )
        counts: dict[str, dict[str, int]] = {}
        for report_id, kind, n in counted:
            counts.setdefault(report_id, dict.fromkeys(CLASSES, 0))[kind] = int(n)
        out = []
        for row in rows:
            item = _summary(row)
            item["counts"] = counts.get(item["id"], dict.fromkeys(CLASSES, 0))
            item["findings"] = sum(item["counts"].values())
            out.append(item)
        return out

    def versions(self, start: date, end: date | None = None) -> list[dict[str, Any]]:
        """Every version of the reports whose first day is within [start, end or start], newest
        first (saved at, then version), JSON-ready (`report_versions.VERSION_KEYS`); `changed`
        lists the findings whose class or amount differs from that day's previous version."""
        self._ensure()
        cond, params = _within(start, end or start)
        with self._tx() as s:
            rows = s.run(
                self._sql(
                    f"SELECT {', '.join('r.' + c for c in _SUMMARY)}, r.details FROM {{s}}{_R} r "
                    f"WHERE {cond} ORDER BY r.created_at DESC, r.version DESC, r.date DESC, "
                    "r.end_date DESC"
                ),
                params,
            )
        items = [(_summary(row[:-1]), row[-1]) for row in rows]
        findings = {
            item["id"]: _rebuild(_details(details)["_record"]).findings for item, details in items
        }
        # Each day's versions are all in `rows` (the filter is on the day), so every previous one is
        # too.
        prior: dict[str, str | None] = {}  # report id -> the id of its day's previous version
        last: dict[tuple[date, date], str] = {}
        for item, _ in sorted(
            items, key=lambda i: (i[0]["date"], i[0]["end_date"], i[0]["version"])
        ):
            key = (item["date"], item["end_date"])
            prior[item["id"]], last[key] = last.get(key), item["id"]
        return [
            describe(item, changes(findings.get(prior[item["id"]]), findings[item["id"]]))
            for item, _ in items
        ]

    # -- sync audit -----------------------------------------------------------------------------
    def record_sync(self, entries: Iterable[Mapping[str, Any]]) -> int:
        """Append sync audit rows. Each entry needs payment_id, action (insert | skip | dry_run)
        and result (inserted | already_present | failed | would_insert); optional run_id, reason,
        dry_run (default False), date and at (default now). Returns the number written."""
        self._ensure()
        now = datetime.now(UTC)
        rows = []
        for seq, e in enumerate(entries):
            missing = [k for k in ("payment_id", "action", "result") if not e.get(k)]
            if missing:
                raise ValueError(f"sync audit entry {seq} lacks {', '.join(missing)}")
            rows.append(
                (
                    str(uuid.uuid4()),
                    seq,
                    e.get("at") or now,
                    e.get("run_id"),
                    str(e["payment_id"]),
                    e["action"],
                    e["result"],
                    e.get("reason"),
                    bool(e.get("dry_run", False)),
                    e.get("date"),
                )
            )
        if rows:
            with self._tx() as s:
                s.bulk(_S, _SYNC_COLUMNS, rows)
        return len(rows)

    def sync_history(
        self,
        *,
        run_id: str | None = None,
        payment_id: str | None = None,
        start: date | None = None,
        end: date | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Audit rows, newest first (in entry order within one batch), filtered by run, payment
        and the reconciliation `date` range (rows without a date are left out by a date filter)."""
        self._ensure()
        where, params = ["1 = 1"], []
        for clause, value in (
            ("run_id = ?", run_id),
            ("payment_id = ?", payment_id),
            ("date >= ?", start),
            ("date <= ?", end),
        ):
            if value is not None:
                where.append(clause), params.append(value)
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        with self._tx() as s:
            rows = s.run(
                self._sql(
                    f"SELECT {_cols(_SYNC_COLUMNS)} FROM {{s}}{_S} WHERE {' AND '.join(where)} "
                    f'ORDER BY "at" DESC, seq ASC{tail}'
                ),
                params,
            )
        return [
            {k: v for k, v in zip(_SYNC_COLUMNS, row, strict=True) if k != "seq"} for row in rows
        ]


class _Session:
    """A connection inside a transaction, with `?` placeholders for both dialects."""

    def __init__(self, store: ReportStore, conn: Any):
        self.store, self.conn, self.pg = store, conn, store.dialect is _PG

    def run(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        if self.pg:
            cur = self.conn.execute(sql.replace("?", "%s"), tuple(params))
            return cur.fetchall() if cur.description else []
        rel = self.conn.execute(sql, list(params))
        return rel.fetchall() if rel.description else []

    def many(self, sql: str, rows: list[tuple]) -> None:
        if self.pg:
            with self.conn.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), rows)
        else:
            self.conn.executemany(sql, rows)

    def bulk(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        """Many rows at once: COPY on PostgreSQL, an Arrow table scan on DuckDB."""
        if not rows:
            return
        target = self.store._sql(f"{{s}}{table} ({_cols(columns)})")
        if self.pg:
            with self.conn.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        import pyarrow as pa

        types = self.conn.sql(
            self.store._sql(f"SELECT {_cols(columns)} FROM {{s}}{table} LIMIT 0")
        ).to_arrow_table()
        data = pa.table(
            [
                pa.array(list(col), type=f.type)
                for col, f in zip(zip(*rows), types.schema, strict=True)
            ],
            names=list(columns),
        )
        self.conn.register("_recon_bulk", data)
        try:
            self.conn.execute(f"INSERT INTO {target} SELECT * FROM _recon_bulk")
        finally:
            self.conn.unregister("_recon_bulk")


# -- helpers -------------------------------------------------------------------------------------
def _cols(columns: Iterable[str]) -> str:
    """Quoted column list (`at` is reserved in DuckDB)."""
    return ", ".join(f'"{c}"' for c in columns)


def _schema_from_options(url: str) -> str | None:
    """The first schema of `?options=-csearch_path%3Dname` in a PostgreSQL URL, if any."""
    for options in parse_qs(urlsplit(url).query).get("options", []):
        match = re.search(r"-c\s*search_path\s*=\s*\"?([A-Za-z_][A-Za-z0-9_]*)", options)
        if match:
            return match.group(1)
    return None


def _lock_key(*parts: str) -> int:
    """A stable signed 64-bit advisory lock key for these parts."""
    digest = hashlib.blake2b(
        "\x1f".join(("recon_dagster.report_store", *parts)).encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _duck_lock(path: Path) -> threading.Lock:
    with _DUCK_LOCKS_GUARD:
        return _DUCK_LOCKS.setdefault(str(path), threading.Lock())


def _within(start: date | None, end: date | None) -> tuple[str, list[Any]]:
    """The WHERE condition on a report's first day (alias `r`) and its parameters."""
    where, params = ["1 = 1"], []
    if start is not None:
        where.append("r.date >= ?"), params.append(start)
    if end is not None:
        where.append("r.date <= ?"), params.append(end)
    return " AND ".join(where), params


def _summary(row: tuple) -> dict[str, Any]:
    """A `_SUMMARY` row as a dict, money scaled to the currency's decimals (error rows have none)."""
    item = dict(zip(_SUMMARY, row, strict=True))
    places = Decimal(1).scaleb(-exponent(item["currency"])) if item["currency"] else Decimal(1)
    for m in _MONEY:
        item[m] = Decimal(item[m]).quantize(places)
    return item


def _details(value: Any) -> dict[str, Any]:
    """The `details` column: psycopg decodes JSONB, DuckDB hands JSON back as text."""
    return json.loads(value) if isinstance(value, str) else value


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: dates as ISO text, Decimal and non-finite floats as strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    if isinstance(value, Decimal) or (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    return value


def _rebuild(record: dict[str, Any]) -> ReconciliationResult:
    """The inverse of `_jsonable(to_record())`."""
    record = {k: v for k, v in record.items() if k != "version"}

    def stamp(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text)

    pct = ("discrepancy_percentage", "gross_discrepancy_percentage")
    totals = tuple(
        CurrencyTotals(**{**t, **{p: float(t[p]) for p in pct}}) for t in record["totals"]
    )
    findings = tuple(
        Finding(
            **{
                **f,
                "stripe_created": stamp(f["stripe_created"]),
                "database_created": stamp(f["database_created"]),
            }
        )
        for f in record["findings"]
    )
    return ReconciliationResult(
        **{
            **record,
            **{p: float(record[p]) for p in (*pct, "tolerance_percentage")},
            "date": date.fromisoformat(record["date"]),
            "end_date": date.fromisoformat(record["end_date"]),
            "totals": totals,
            "findings": findings,
            "recommendations": tuple(record["recommendations"]),
            "source_mismatches": tuple(record.get("source_mismatches", ())),
        }
    )
