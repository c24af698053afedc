"""Report versions for auditors: what started each save, and which findings changed between saves.

Why its own module: the report store keeps every version of a day (issue 15); deciding what a
trigger is and what "changed" means is policy, not storage, and is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from itertools import zip_longest
from typing import Any, Literal, cast, get_args

from recon_dagster.core.result import Finding
from recon_dagster.money import to_major

# What started a save. `cli` and `api` are the Python service's own sources; the others are read
# from a Dagster run's tags (`trigger_of_run`). NULL in the store: saved before migration 4.
Trigger = Literal["schedule", "backfill", "manual", "late_change", "cli", "api"]
TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)
TRIGGER_TAG = "recon/trigger"

# The keys of one `versions()` entry, in order (the CLI prints exactly these).
VERSION_KEYS = (
    "date",
    "end_date",
    "version",
    "generated_at",
    "trigger",
    "run_id",
    "status",
    "currency",
    "stripe_total",
    "database_total",
    "discrepancy",
    "gross_discrepancy",
    "discrepancy_percentage",
    "gross_discrepancy_percentage",
    "changed",
    "account",
)
MONEY = ("stripe_total", "database_total", "discrepancy", "gross_discrepancy")


def trigger_of_run(tags: Mapping[str, str]) -> Trigger:
    """The trigger of a Dagster run: an explicit `recon/trigger` tag naming a known trigger wins,
    then the tags Dagster sets for schedules and backfills; anything else was started by hand.
    An unknown `recon/trigger` value is ignored rather than failing a run that already
    reconciled."""
    tagged = tags.get(TRIGGER_TAG)
    if tagged in TRIGGERS:
        return cast(Trigger, tagged)
    if tags.get("dagster/schedule_name"):
        return "schedule"
    if tags.get("dagster/backfill"):
        return "backfill"
    return "manual"


def trigger_for_save(trigger: str | None, source: str) -> Trigger:
    """`save`'s trigger: as given, else the service's source (`cli`/`api`), else `manual`.
    Unknown values are refused so the column stays a closed vocabulary auditors can filter on."""
    chosen = trigger or (source if source in ("cli", "api") else "manual")
    if chosen not in TRIGGERS:
        raise ValueError(f"unknown trigger {chosen!r}: use one of {', '.join(TRIGGERS)}")
    return cast(Trigger, chosen)


def snapshot(f: Finding) -> dict[str, Any]:
    """What auditors compare across versions: the class and the money (exact major-unit text)."""

    def major(minor: int | None, currency: str | None) -> str | None:
        return (
            None if minor is None or not currency else str(to_major(minor, currency))
        )  # "": an invalid row

    return {
        "kind": f.kind,
        "currency": f.currency,
        "stripe_amount": major(f.stripe_amount, f.stripe_currency or f.currency),
        "database_amount": major(f.database_amount, f.database_currency or f.currency),
        # A currency mismatch's difference mixes two currencies: not money (as in the line items).
        "difference": None if f.kind == "currency_mismatches" else major(f.difference, f.currency),
    }


def changes(before: Iterable[Finding] | None, after: Iterable[Finding]) -> list[dict[str, Any]]:
    """Findings whose class or amount differs between two versions of a day, by payment id.

    Findings are matched on (payment_id, kind); identical snapshots cancel out. What is left of
    one payment id on both sides is then paired up, so a class change (missing_in_database ->
    amount_mismatches) reads as one entry with `before` and `after`; the rest appeared (`before`
    null) or disappeared (`after` null). `before` None (the first version) gives no changes.
    """
    if before is None:
        return []
    old, new = _by_payment(before), _by_payment(after)
    out = []
    for pid in sorted(old.keys() | new.keys()):
        gone, came = _cancel(old.get(pid, []), new.get(pid, []))
        pairs = []
        for s in list(gone):  # same (payment_id, kind) on both sides: the amount changed
            twin = next((c for c in came if c["kind"] == s["kind"]), None)
            if twin is not None:
                pairs.append((s, twin))
                gone.remove(s)
                came.remove(twin)
        pairs += zip_longest(gone, came)  # what is left of one id on both sides changed class
        out += [{"payment_id": pid, "before": b, "after": a} for b, a in pairs]
    return out


def describe(row: Mapping[str, Any], changed: list[dict[str, Any]]) -> dict[str, Any]:
    """One `versions()` entry from a stored summary row: JSON-ready, money as exact strings."""
    out = {k: row.get(k) for k in VERSION_KEYS}
    out.update({m: str(row[m]) for m in MONEY})
    out.update(
        date=_iso(row["date"]),
        end_date=_iso(row["end_date"]),
        generated_at=_iso(row["created_at"]),
        changed=changed,
    )
    return out


def _by_payment(findings: Iterable[Finding]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        grouped.setdefault(f.payment_id, []).append(snapshot(f))
    return grouped


def _cancel(old: list[dict], new: list[dict]) -> tuple[list[dict], list[dict]]:
    """Both lists minus the snapshots they share (as multisets: invalid rows share the id "")."""
    new = list(new)
    gone = []
    for s in old:
        if s in new:
            new.remove(s)
        else:
            gone.append(s)
    return gone, new


def _iso(value: date | datetime | str) -> str:
    if isinstance(value, datetime):  # DuckDB and psycopg both return aware values for TIMESTAMPTZ
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return value if isinstance(value, str) else value.isoformat()
