"""Month closes and period locks in the report store (same database, migration 5).

month_closes   every close of a month, versioned (1, 2, …): status and the figures as JSON
               (`MonthClose.to_json_dict()`); a re-run adds a version, never rewrites one.
period_locks   the lock history of each month: `lock` / `unlock`, who, when, why, and the
               figures locked. A month is locked when its last entry is a `lock`.

Each row is one Stripe account's (`account`, migration 6): a store reads and writes the account
of the `ReportStore` it is made from (`default` for a single account).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

from recon_dagster.settings.accounts import DEFAULT_ACCOUNT
from recon_dagster.stores.migrations import ADJUSTMENTS, MONTH_CLOSES, PERIOD_LOCKS
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.stores.store_database import json_column, jsonable

_LOCK_COLUMNS = ("month", "seq", "action", "actor", "reason", "close_id", "figures", "recorded_at")


class PeriodLockedError(RuntimeError):
    """A change asked of a locked month (or an unlock of an open one)."""


class CloseStore:
    """Saves month closes and records locks, beside the daily reports."""

    def __init__(self, store: ReportStore):
        self.db = store.db
        self.account = store.account or DEFAULT_ACCOUNT

    def save(
        self, figures: dict[str, Any], *, source: str, run_id: str | None = None
    ) -> tuple[str, int]:
        """Record a close of `figures["month"]` as its next version; returns (id, version)."""
        month, close_id = figures["month"], str(uuid.uuid4())
        with self.db.transaction() as s:
            s.lock("month_close", month, self.account)
            [(last,)] = s.run(
                self.db.qualified(
                    f"SELECT max(version) FROM {{s}}{MONTH_CLOSES} WHERE month = ? AND account = ?"
                ),
                (month, self.account),
            )
            version = (last or 0) + 1
            s.run(
                self.db.qualified(
                    f"INSERT INTO {{s}}{MONTH_CLOSES} (id, month, version, status, figures, "
                    "source, run_id, created_at, account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (
                    close_id,
                    month,
                    version,
                    figures["status"],
                    json.dumps(jsonable(figures)),
                    source,
                    run_id,
                    datetime.now(UTC),
                    self.account,
                ),
            )
        return close_id, version

    def closes(self, month: str) -> list[dict[str, Any]]:
        """Every close of `month`, newest first: id, version, status, source, run_id,
        created_at, figures."""
        with self.db.transaction() as s:
            rows = s.run(
                self.db.qualified(
                    "SELECT id, version, status, source, run_id, created_at, figures FROM "
                    f"{{s}}{MONTH_CLOSES} WHERE month = ? AND account = ? ORDER BY version DESC"
                ),
                (month, self.account),
            )
        keys = ("id", "version", "status", "source", "run_id", "created_at", "figures")
        return [
            {**dict(zip(keys, row, strict=True)), "figures": json_column(row[-1])} for row in rows
        ]

    def lock(
        self, month: str, *, actor: str, figures: dict[str, Any], close_id: str | None
    ) -> dict[str, Any]:
        """Lock `month` with the figures it was closed at; a locked month refuses a second
        lock."""
        return self._record(month, "lock", actor, None, close_id, figures)

    def unlock(self, month: str, *, actor: str, reason: str) -> dict[str, Any]:
        """Re-open a locked `month`, saying why; an open month refuses."""
        return self._record(month, "unlock", actor, reason, None, None)

    def locks(self, month: str | None = None) -> list[dict[str, Any]]:
        """The lock history (of `month`, or of every month), oldest first."""
        where, params = (
            ("WHERE account = ? AND month = ?", (self.account, month))
            if month
            else ("WHERE account = ?", (self.account,))
        )
        with self.db.transaction() as s:
            rows = s.run(
                self.db.qualified(
                    f"SELECT {', '.join(_LOCK_COLUMNS)} FROM {{s}}{PERIOD_LOCKS} {where} "
                    "ORDER BY month, seq"
                ),
                params,
            )
        out: list[dict[str, Any]] = [dict(zip(_LOCK_COLUMNS, row, strict=True)) for row in rows]
        for entry in out:
            entry["figures"] = json_column(entry["figures"]) if entry["figures"] else None
        return out

    def locked_months(self) -> set[str]:
        """The months whose last lock entry is a lock."""
        last: dict[str, str] = {}
        for entry in self.locks():
            last[entry["month"]] = entry["action"]
        return {month for month, action in last.items() if action == "lock"}

    def is_locked(self, month: str) -> bool:
        return month in self.locked_months()

    def book_adjustment(
        self,
        *,
        run_key: str,
        locked_month: str,
        day: date,
        booked_month: str,
        events: str,
        event_types: str,
    ) -> bool:
        """Book a late change to `day` (of the locked month) in `booked_month`; False when this
        run key was booked already (a re-read event books nothing twice)."""
        with self.db.transaction() as s:
            s.lock("adjustment", run_key)  # a run key names its partition: account and day
            found = s.run(
                self.db.qualified(f"SELECT 1 FROM {{s}}{ADJUSTMENTS} WHERE run_key = ?"),
                (run_key,),
            )
            if found:
                return False
            s.run(
                self.db.qualified(
                    f"INSERT INTO {{s}}{ADJUSTMENTS} (id, run_key, locked_month, day, "
                    "booked_month, events, event_types, recorded_at, account) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (
                    str(uuid.uuid4()),
                    run_key,
                    locked_month,
                    day,
                    booked_month,
                    events,
                    event_types,
                    datetime.now(UTC),
                    self.account,
                ),
            )
        return True

    def adjustments(self, booked_month: str) -> list[dict[str, Any]]:
        """The prior-period adjustments booked in `booked_month`, oldest first."""
        keys = ("run_key", "locked_month", "day", "events", "event_types", "recorded_at")
        with self.db.transaction() as s:
            rows = s.run(
                self.db.qualified(
                    f"SELECT {', '.join(keys)} FROM {{s}}{ADJUSTMENTS} WHERE booked_month = ? "
                    "AND account = ? ORDER BY recorded_at"
                ),
                (booked_month, self.account),
            )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def _record(
        self,
        month: str,
        action: str,
        actor: str,
        reason: str | None,
        close_id: str | None,
        figures: dict[str, Any] | None,
    ) -> dict[str, Any]:
        with self.db.transaction() as s:
            s.lock("period_lock", month, self.account)
            rows = s.run(
                self.db.qualified(
                    f"SELECT seq, action FROM {{s}}{PERIOD_LOCKS} WHERE month = ? AND account = ? "
                    "ORDER BY seq DESC LIMIT 1"
                ),
                (month, self.account),
            )
            seq, previous = rows[0] if rows else (0, "unlock")
            if previous == action:
                state = "locked" if action == "lock" else "not locked"
                whose = "" if self.account == DEFAULT_ACCOUNT else f" for account {self.account}"
                raise PeriodLockedError(f"{month} is already {state}{whose}")
            entry = {
                "month": month,
                "seq": seq + 1,
                "action": action,
                "actor": actor,
                "reason": reason,
                "close_id": close_id,
                "figures": figures,
                "recorded_at": datetime.now(UTC),
            }
            values = [
                json.dumps(jsonable(figures)) if k == "figures" and figures else entry[k]
                for k in _LOCK_COLUMNS
            ]
            s.run(
                self.db.qualified(
                    f"INSERT INTO {{s}}{PERIOD_LOCKS} (id, {', '.join(_LOCK_COLUMNS)}, account) "
                    f"VALUES (?, {', '.join('?' for _ in _LOCK_COLUMNS)}, ?)"
                ),
                (str(uuid.uuid4()), *values, self.account),
            )
        return entry
