"""Repair: insert charges Stripe collected but the payments table lacks (the seed's
syncMissingPayments).

Safe to run unattended. Each charge is re-read from Stripe, refused unless it is money collected
and new to the table (anywhere in it, not only in the day's window), and inserted in its own
transaction under the database's own guarantees (see `payments_db.insert_payment`). Every
action is written to the `sync_audit` table. A second run inserts nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from recon_dagster.core.keys import INTENT_PREFIX
from recon_dagster.core.result import MatchOn
from recon_dagster.settings import PaymentsTable
from recon_dagster.sources import payments_db, stripe_charges
from recon_dagster.sources.payments_db import InsertResult, NewPayment, PaymentsDataError
from recon_dagster.sources.stripe_client import StripeUnavailableError
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.stores.store_database import ReportStoreUnreachable

log = logging.getLogger("recon_dagster.sync")
AUDIT_RECONNECT_SECONDS = 60.0

# What a sync did with one id.
Outcome = Literal["inserted", "already_present", "would_insert", "failed"]


@dataclass(frozen=True)
class SyncOutcome:
    payment_id: str
    result: Outcome
    reason: str = ""


@dataclass
class SyncResult:
    """The seed's `{synced, failed}`, with a reason for each failed id and what was skipped."""

    dry_run: bool
    outcomes: list[SyncOutcome] = field(default_factory=list)

    def with_result(self, result: Outcome) -> list[SyncOutcome]:
        return [o for o in self.outcomes if o.result == result]

    @property
    def synced(self) -> int:
        return len(self.with_result("inserted"))

    @property
    def failed(self) -> list[SyncOutcome]:
        return self.with_result("failed")

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "synced": self.synced,
            "failed": [{"payment_id": o.payment_id, "reason": o.reason} for o in self.failed],
            "skipped": [
                {"payment_id": o.payment_id, "reason": o.reason}
                for o in self.with_result("already_present")
            ],
            "would_sync": [o.payment_id for o in self.with_result("would_insert")],
            "dry_run": self.dry_run,
        }


def _refusal(charge: dict[str, Any]) -> str | None:
    """Why a charge must not be recorded as a payment, or None if it may."""
    if charge["status"] != "succeeded" or not charge["paid"]:
        return f"Stripe status is '{charge['status']}': no money was collected"
    if not charge["captured"]:
        return "the charge is authorised but not captured: no money was collected yet"
    return None


def _row(charge: dict[str, Any], table: PaymentsTable, kind: str) -> NewPayment:
    return NewPayment(
        id=charge["payment_intent"]
        if kind == "payment_intent" and charge["payment_intent"]
        else charge["id"],
        amount=charge["amount_captured"],
        currency=charge["currency"],
        status=table.paid_statuses[0],
        created_at=charge["created"].astimezone(UTC),
        refunded=charge["amount_refunded"] if table.refunded_column else None,
    )


def sync_payments(
    ids: list[str],
    *,
    client,
    table: PaymentsTable,
    store: ReportStore | None,
    dry_run: bool = False,
    run_id: str | None = None,
    day: date | None = None,
    match_on: MatchOn = "auto",
    window: tuple[datetime, datetime] | None = None,
) -> SyncResult:
    """Insert the Stripe charges `ids` that are missing from the payments table.

    The row's id is of the kind the table holds (`id_kind`): the PaymentIntent id where the
    table keeps those. A charge counts as present whether its charge id or its PaymentIntent id
    is in the table.
    """
    wanted = list(dict.fromkeys(ids))
    result = SyncResult(dry_run=dry_run)
    try:
        charges, not_found = stripe_charges.retrieve_charges(client, wanted)
    except StripeUnavailableError as exc:
        result.outcomes = [SyncOutcome(i, "failed", f"Stripe unavailable: {exc}") for i in wanted]
        _audit(store, result.outcomes, dry_run, run_id, day)
        return result
    by_id = {c["id"]: c for c in charges.to_dicts()}
    intents = [c["payment_intent"] for c in by_id.values() if c["payment_intent"]]
    present = (
        set(payments_db.find_ids(table, wanted + intents)["id"].to_list()) if dry_run else set()
    )
    kind = id_kind(table, match_on, window) if by_id else "charge"

    for pid in wanted:
        charge = by_id.get(pid)
        if charge is None:
            outcome = SyncOutcome(
                pid,
                "failed",
                "no such charge in Stripe (404)" if pid in not_found else "not returned by Stripe",
            )
        elif charge["invalid_reason"] is not None:
            outcome = SyncOutcome(
                pid, "failed", f"Stripe sent an invalid charge: {charge['invalid_reason']}"
            )
        elif (why := _refusal(charge)) is not None:
            outcome = SyncOutcome(pid, "failed", why)
        elif dry_run:
            there = pid in present or charge["payment_intent"] in present
            outcome = SyncOutcome(
                pid,
                "already_present" if there else "would_insert",
                "already in the payments table" if there else "",
            )
        else:
            outcome = _insert(table, charge, kind)
        result.outcomes.append(outcome)
        if not dry_run:
            # Audited as it happens: a sync that stops half-way (its database gone) leaves an
            # audit that agrees with what it inserted.
            _audit(store, [outcome], dry_run, run_id, day)
    if dry_run:
        _audit(store, result.outcomes, dry_run, run_id, day)
    log.info(
        "Sync %s: %s synced, %s failed, %s already present",
        "dry run" if dry_run else "done",
        result.synced,
        len(result.failed),
        len(result.with_result("already_present")),
    )
    return result


def id_kind(
    table: PaymentsTable, match_on: MatchOn, window: tuple[datetime, datetime] | None
) -> str:
    """`charge` or `payment_intent`: what new rows' ids should be, as the table's rows are that
    day."""
    if match_on in ("charge", "payment_intent"):
        return match_on
    if window is None:
        return "charge"
    ids = payments_db.read_window(table, *window).get_column("id").drop_nulls()
    intents = int(ids.str.starts_with(INTENT_PREFIX).sum())
    return "payment_intent" if intents * 2 > ids.len() else "charge"


def _insert(table: PaymentsTable, charge: dict[str, Any], kind: str) -> SyncOutcome:
    also = [i for i in (charge["id"], charge["payment_intent"]) if i]
    try:
        done = payments_db.insert_payment(table, _row(charge, table, kind), also=also)
    except (PaymentsDataError, ValueError) as exc:
        # Each insert is its own transaction: this one rolled back, earlier ones stay committed.
        return SyncOutcome(charge["id"], "failed", str(exc))
    if done is InsertResult.ALREADY_PRESENT:
        return SyncOutcome(charge["id"], "already_present", "already in the payments table")
    return SyncOutcome(charge["id"], "inserted")


def _audit(
    store: ReportStore | None,
    outcomes: list[SyncOutcome],
    dry_run: bool,
    run_id: str | None,
    day: date | None,
) -> None:
    if store is None:
        return
    action = {"inserted": "insert", "would_insert": "dry_run"}
    entries = [
        {
            "payment_id": o.payment_id,
            "action": "dry_run" if dry_run else action.get(o.result, "skip"),
            "result": o.result,
            "reason": o.reason or None,
            "dry_run": dry_run,
            "run_id": run_id,
            "date": day,
            "at": datetime.now(UTC),
        }
        for o in outcomes
    ]
    # A PostgreSQL store restarting refuses connections for a few seconds: the audit waits for it
    # (any other store failure, e.g. a full disk, is not waited on).
    deadline = time.monotonic() + AUDIT_RECONNECT_SECONDS
    while True:
        try:
            store.sync_audit.record(entries)
            return
        except ReportStoreUnreachable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
