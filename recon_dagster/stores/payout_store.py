"""Payout reports in the report store (same database, same versioned migrations: version 3).

  payout_reports      one row per reconciled day (or range) of payouts: status, severity, counts,
                      `details` JSON = `PayoutResult.to_json_dict()` plus the lossless `_record`.
  payout_line_items   one row per payout (kind `payout`) and per deposit without a payout (kind
                      `deposit_without_payout`), for SQL; id lists are comma-separated.

Saving a day replaces its rows in one transaction, so re-running never duplicates.
"""

from __future__ import annotations

import json
import uuid
from datetime import date

from recon_dagster.core.payout_result import ITEMIZED, PayoutResult
from recon_dagster.money import to_major
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.stores.store_database import json_column, jsonable

_COLUMNS = (
    "report_id",
    "position",
    "date",
    "end_date",
    "kind",
    "id",
    "amount",
    "amount_major",
    "currency",
    "arrival_date",
    "status",
    "automatic",
    "itemized_net",
    "difference",
    *ITEMIZED,
    "transaction_count",
    "bank_deposit_id",
    "problems",
    "charges_missing_in_database",
    "charges_amount_mismatch",
    "reference",
)


class PayoutStore:
    """Saves and reads payout results beside the charges' reports (see the module docstring)."""

    def __init__(self, store: ReportStore):
        self.db = store.db
        # One account's payouts, as `store`'s reports are (`default` for a single account).
        self.account = store.account or DEFAULT_ACCOUNT

    def save(
        self, result: PayoutResult, *, source: str = "dagster", run_id: str | None = None
    ) -> str:
        db = self.db
        report_id, key = str(uuid.uuid4()), (result.first, result.last)
        counts = result.counts()
        problems = sum(1 for p in result.payouts if set(p.problems) - {"awaiting_bank"})
        details = jsonable(
            {**result.to_json_dict(), "_record": {"version": 1, **result.to_record()}}
        )
        report = (
            report_id,
            *key,
            result.as_of,
            result.status,
            result.severity(),
            counts["payouts"],
            problems,
            counts["deposits_without_payout"],
            result.bank_checked,
            result.error,
            json.dumps(details, allow_nan=False),
            source,
            run_id,
        )
        lines = [
            (
                report_id,
                i,
                *key,
                "payout",
                p.id,
                p.amount,
                to_major(p.amount, p.currency),
                p.currency,
                p.arrival_date,
                p.status,
                p.automatic,
                p.itemized_net,
                p.difference,
                p.charges,
                p.refunds,
                p.disputes,
                p.fees,
                p.adjustments,
                p.transaction_count,
                p.bank_deposit_id,
                ",".join(p.problems),
                ",".join(p.charges_missing_in_database),
                ",".join(p.charges_amount_mismatch),
                None,
            )
            for i, p in enumerate(result.payouts)
        ]
        lines += [
            (
                report_id,
                len(lines) + i,
                *key,
                "deposit_without_payout",
                d.id,
                d.amount,
                to_major(d.amount, d.currency),
                d.currency,
                d.date,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                "deposits_without_payout",
                None,
                None,
                d.reference,
            )
            for i, d in enumerate(result.deposits_without_payout)
        ]
        account = (*key, self.account)
        with db.transaction() as s:
            s.lock("save_payouts", *map(str, key), self.account)
            s.run(
                db.qualified(
                    "DELETE FROM {s}payout_line_items WHERE report_id IN (SELECT id FROM "
                    "{s}payout_reports WHERE date = ? AND end_date = ? AND account = ?)"
                ),
                account,
            )
            s.run(
                db.qualified(
                    "DELETE FROM {s}payout_reports WHERE date = ? AND end_date = ? AND account = ?"
                ),
                account,
            )
            s.run(
                db.qualified(
                    "INSERT INTO {s}payout_reports (id, date, end_date, as_of, status, severity, "
                    "payouts, problems, deposits_without_payout, bank_checked, error, details, "
                    f"source, run_id, account) VALUES ({', '.join(['?'] * 11)}, "
                    f"CAST(? AS {db.dialect.json}), ?, ?, ?)"
                ),
                (*report, self.account),
            )
            s.bulk("payout_line_items", _COLUMNS, lines)
        return report_id

    def latest(self, first: date, last: date | None = None) -> PayoutResult | None:
        """The stored result for (first, last or first), rebuilt losslessly, or None."""
        with self.db.transaction() as s:
            rows = s.run(
                self.db.qualified(
                    "SELECT details FROM {s}payout_reports WHERE date = ? AND end_date = ? "
                    "AND account = ?"
                ),
                (first, last or first, self.account),
            )
        if not rows:
            return None
        record = json_column(rows[0][0])["_record"]
        return PayoutResult.from_record({k: v for k, v in record.items() if k != "version"})
