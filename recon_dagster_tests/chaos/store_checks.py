"""What a user would check in the report store after a fault, read with plain SQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from recon_dagster.stores.report_store import ReportStore
from recon_dagster_tests.support.store_sql import raw


@dataclass(frozen=True)
class DayInStore:
    versions: list[int]
    partial: int  # reports whose line items are not exactly their findings
    orphans: int  # line items of no report
    latest_status: str | None


def day_in_store(store: ReportStore, day: date) -> DayInStore:
    store.migrate()  # the tables, should no run have stored anything yet
    rows = raw(
        store,
        "select r.id, r.version, r.status, cast(r.details as varchar), "
        "(select count(*) from {s}reconciliation_line_items l where l.report_id = r.id) "
        f"from {{s}}reconciliation_reports r where r.date = '{day.isoformat()}' order by r.version",
    )
    partial = sum(
        1
        for _, _, _, details, items in rows
        if len(json.loads(details)["_record"]["findings"]) != items
    )
    [(orphans,)] = raw(
        store,
        "select count(*) from {s}reconciliation_line_items l where not exists "
        "(select 1 from {s}reconciliation_reports r where r.id = l.report_id)",
    )
    return DayInStore(
        versions=[r[1] for r in rows],
        partial=partial,
        orphans=orphans,
        latest_status=rows[-1][2] if rows else None,
    )
