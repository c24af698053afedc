"""The sync audit: what each sync did (or would have done) to each payment, in the report
store's `sync_audit` table."""

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from recon_dagster.stores.migrations import SYNC_AUDIT
from recon_dagster.stores.store_database import StoreDatabase, quoted

_COLUMNS = (
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


class SyncAudit:
    """Appends and reads sync audit rows."""

    def __init__(self, db: StoreDatabase):
        self.db = db

    def record(self, entries: Iterable[Mapping[str, Any]]) -> int:
        """Append sync audit rows. Each entry needs payment_id, action (insert | skip | dry_run)
        and result (inserted | already_present | failed | would_insert); optional run_id, reason,
        dry_run (default False), date and at (default now). Returns the number written."""
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
            with self.db.transaction() as s:
                s.bulk(SYNC_AUDIT, _COLUMNS, rows)
        return len(rows)

    def history(
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
        where, params = ["1 = 1"], []
        for clause, value in (
            ("run_id = ?", run_id),
            ("payment_id = ?", payment_id),
            ("date >= ?", start),
            ("date <= ?", end),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        with self.db.transaction() as s:
            rows = s.run(
                self.db.qualified(
                    f"SELECT {quoted(_COLUMNS)} FROM {{s}}{SYNC_AUDIT} WHERE {' AND '.join(where)} "
                    f'ORDER BY "at" DESC, seq ASC{tail}'
                ),
                params,
            )
        return [{k: v for k, v in zip(_COLUMNS, row, strict=True) if k != "seq"} for row in rows]
