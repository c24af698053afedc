"""The report store: every reconciled day (or range) kept in DuckDB or PostgreSQL.

Why it exists: Dagster runs, the CLI and trend checks all need yesterday's answer without
re-running the reconciliation, and people want to query findings with plain SQL.

Tables (created by the versioned migrations of migrations.py, applied by store_database.py):
  reconciliation_reports         one row per version of (account, date, end_date): re-running a
                                 day adds
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

The sync audit is written and read by `sync_audit.py`, in the same database.
"""

import copy
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from recon_dagster.core.result import CLASSES, CurrencyTotals, Finding, ReconciliationResult
from recon_dagster.money import exponent, to_major
from recon_dagster.settings import redact_url
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT
from recon_dagster.stores.migrations import (
    CURRENCY_TOTALS as _C,
    LINE_ITEMS as _L,
    REPORTS as _R,
)
from recon_dagster.stores.report_versions import changes, describe, trigger_for_save
from recon_dagster.stores.store_database import (
    ReportStoreError,
    StoreDatabase,
    json_column,
    json_text,
)
from recon_dagster.stores.sync_audit import SyncAudit

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
    "account",
)


class ReportStore:
    """Saves and reads reconciliation results; see the module docstring for the layout.

    A store is one Stripe account's (`account`, default `default`); `for_account` gives another
    account's over the same database, and `for_account(None)` reads every account's."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        lock_timeout: float = 30.0,
        account: str | None = DEFAULT_ACCOUNT,
    ):
        self.db = StoreDatabase(url, schema=schema, lock_timeout=lock_timeout)
        self.sync_audit = SyncAudit(self.db)
        self.account = account

    def for_account(self, account: str | None) -> "ReportStore":
        """The same store, saving and reading `account`'s reports (None: reading everyone's)."""
        other = copy.copy(self)
        other.account = account
        return other

    def _one_account(self) -> str:
        if self.account is None:
            raise ValueError("a report is saved (or read by day) for one account: use for_account")
        return self.account

    def __repr__(self) -> str:
        return f"ReportStore({redact_url(self.db.url)!r}, schema={self.db.schema!r})"

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def schema(self) -> str | None:
        return self.db.schema

    @property
    def path(self) -> Path | None:
        """The DuckDB file; None on PostgreSQL."""
        return self.db.path

    def migrate(self) -> list[int]:
        """Apply pending migrations (see `StoreDatabase.migrate`)."""
        return self.db.migrate()

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
        account = self._one_account()
        report_id, cur = str(uuid.uuid4()), result.currency
        key = (result.date, result.end_date)

        def major(minor: int | None, currency: str | None) -> Decimal | None:
            return (
                None if minor is None or not currency else to_major(minor, currency)
            )  # "": an invalid row

        # Once for the JSON, the record and the line items: a large day's findings are a frame,
        # and these are its rows.
        records = result.finding_records()
        details = json_text(
            {
                **result.to_json_dict(records),
                "_record": {"version": 1, **result.to_record(records)},
            }
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
            details,
            source,
            run_id,
            trigger,
        )
        lines = [
            (
                report_id,
                i,
                *key,
                f["kind"],
                f["payment_id"],
                f["currency"],
                f["stripe_amount"],
                f["database_amount"],
                f["difference"],
                major(f["stripe_amount"], f["currency"]),
                major(f["database_amount"], f["currency"]),
                None
                if f["kind"] == "currency_mismatches"
                else major(f["difference"], f["currency"]),
                f["stripe_status"],
                f["database_status"],
                f["detail"],
                f["database_id"],
                f["dispute_id"],
                f["dispute_status"],
                f["source"],
                f["column"],
            )
            for i, f in enumerate(records)
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
        with self.db.transaction() as s:
            # Two savers of one day must not both read max = n and both write n + 1. PostgreSQL:
            # they queue on an advisory lock per day, held to commit, so the second reads the
            # first's row (READ COMMITTED reads afresh per statement). DuckDB: writers in this
            # process hold `_duck_lock`, and another process cannot open the file while this one has
            # it. The UNIQUE (date, end_date, version) constraint backs both up.
            s.lock("save", *map(str, key), *([account] if account != DEFAULT_ACCOUNT else []))
            [(version,)] = s.run(
                self.db.qualified(
                    f"SELECT COALESCE(MAX(version), 0) + 1 FROM {{s}}{_R} "
                    "WHERE date = ? AND end_date = ? AND account = ?"
                ),
                (*key, account),
            )
            s.run(
                self.db.qualified(
                    f"INSERT INTO {{s}}{_R} (id, date, end_date, timezone, currency, stripe_total, "
                    "database_total, discrepancy, stripe_total_minor, database_total_minor, "
                    "discrepancy_minor, "
                    "discrepancy_percentage, gross_discrepancy, gross_discrepancy_minor, "
                    "gross_discrepancy_percentage, tolerance_percentage, include_refunds, "
                    "stripe_count, "
                    "database_count, status, error, details, source, run_id, trigger, version, "
                    "account) VALUES "
                    f"({', '.join(['?'] * 21)}, CAST(? AS {self.db.dialect.json}), ?, ?, ?, ?, ?)"
                ),
                (*report, version, account),
            )
            s.bulk(_L, _LINE_COLUMNS, lines)
            if totals:
                s.many(
                    self.db.qualified(f"INSERT INTO {{s}}{_C} VALUES ({', '.join(['?'] * 18)})"),
                    totals,
                )
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
        """The current (highest) version for (date, end_date or date), rebuilt losslessly, or
        None."""
        with self.db.transaction() as s:
            rows = s.run(
                self.db.qualified(
                    f"SELECT details FROM {{s}}{_R} WHERE date = ? AND end_date = ? "
                    "AND account = ? ORDER BY version DESC LIMIT 1"
                ),
                (date, end_date or date, self._one_account()),
            )
        if not rows:
            return None
        return _rebuild(json_column(rows[0][0])["_record"])

    def latest_days(self, start: date, end: date) -> dict[date, ReconciliationResult]:
        """Each day's current one-day report from `start` to `end` (inclusive), in one query:
        what `latest(day)` gives for every day that has one (a month close reads 28-31)."""
        cond, params = _within(start, end, self._one_account())
        with self.db.transaction() as s:
            rows = s.run(
                self.db.qualified(
                    f"SELECT r.date, r.details FROM {{s}}{_R} r "
                    f"WHERE {cond} AND r.end_date = r.date AND {_CURRENT}"
                ),
                params,
            )
        return {day: _rebuild(json_column(details)["_record"]) for day, details in rows}

    def last_two(self, date: date) -> list[tuple[ReconciliationResult, str | None, str | None]]:
        """The day's current and previous versions (newest first, at most two), each with its
        trigger and run id: what a late change did to the day."""
        with self.db.transaction() as s:
            rows = s.run(
                self.db.qualified(
                    f"SELECT details, trigger, run_id FROM {{s}}{_R} WHERE date = ? AND end_date = "
                    "? AND account = ? ORDER BY version DESC LIMIT 2"
                ),
                (date, date, self._one_account()),
            )
        return [
            (_rebuild(json_column(d)["_record"]), trigger, run_id) for d, trigger, run_id in rows
        ]

    def history(self, start: date | None = None, end: date | None = None) -> list[dict[str, Any]]:
        """The current version of each report whose first day is within [start, end], newest day
        first: money as exact `Decimal` major units (scaled to the currency's decimals) and minor
        ints, counts per class, `version` and `trigger`. Every version: `versions()`."""
        cond, params = _within(start, end, self.account)
        cond += f" AND {_CURRENT}"
        with self.db.transaction() as s:
            rows = s.run(
                self.db.qualified(
                    f"SELECT {', '.join('r.' + c for c in _SUMMARY)} FROM {{s}}{_R} r WHERE {cond} "
                    "ORDER BY r.date DESC, r.end_date DESC, r.account"
                ),
                params,
            )
            counted = s.run(
                self.db.qualified(
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
        cond, params = _within(start, end or start, self.account)
        with self.db.transaction() as s:
            rows = s.run(
                self.db.qualified(
                    f"SELECT {', '.join('r.' + c for c in _SUMMARY)}, r.details FROM {{s}}{_R} r "
                    f"WHERE {cond} ORDER BY r.created_at DESC, r.version DESC, r.date DESC, "
                    "r.end_date DESC"
                ),
                params,
            )
        items = [(_summary(row[:-1]), row[-1]) for row in rows]
        findings = {
            item["id"]: _rebuild(json_column(details)["_record"]).findings
            for item, details in items
        }
        # Each day's versions are all in `rows` (the filter is on the day), so every previous one is
        # too.
        prior: dict[str, str | None] = {}  # report id -> the id of its day's previous version
        last: dict[tuple[str, date, date], str] = {}
        for item, _ in sorted(
            items,
            key=lambda i: (i[0]["account"], i[0]["date"], i[0]["end_date"], i[0]["version"]),
        ):
            key = (item["account"], item["date"], item["end_date"])
            prior[item["id"]], last[key] = last.get(key), item["id"]
        return [
            describe(item, changes(findings.get(prior[item["id"]]), findings[item["id"]]))
            for item, _ in items
        ]


# -- helpers -------------------------------------------------------------------------------------
# A report row (alias `r`) that is the current version of its (date, end_date, account).
_CURRENT = (
    f"r.version = (SELECT MAX(x.version) FROM {{s}}{_R} x "
    "WHERE x.date = r.date AND x.end_date = r.end_date AND x.account = r.account)"
)


def _within(start: date | None, end: date | None, account: str | None) -> tuple[str, list[Any]]:
    """The WHERE condition on a report's first day and account (alias `r`; account None: every
    one) and its parameters."""
    where, params = ["1 = 1"], []
    if account is not None:
        where.append("r.account = ?")
        params.append(account)
    if start is not None:
        where.append("r.date >= ?")
        params.append(start)
    if end is not None:
        where.append("r.date <= ?")
        params.append(end)
    return " AND ".join(where), params


def _summary(row: tuple) -> dict[str, Any]:
    """A `_SUMMARY` row as a dict, money scaled to the currency's decimals (error rows have
    none)."""
    item = dict(zip(_SUMMARY, row, strict=True))
    places = Decimal(1).scaleb(-exponent(item["currency"])) if item["currency"] else Decimal(1)
    for m in _MONEY:
        item[m] = Decimal(item[m]).quantize(places)
    return item


def _rebuild(record: dict[str, Any]) -> ReconciliationResult:
    """The inverse of `json_text(to_record())`."""
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


__all__ = ["ReportStore", "ReportStoreError"]
