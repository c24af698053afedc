"""Stripe events that change a closed day's money: which charges changed, and the day each was made;
which payouts changed, and their arrival dates.

`GET /v1/events` through the paced SDK client, after a cursor. Stripe keeps events 30 days. An
event's charge is its `data.object` (charge events) or that object's `charge` (dispute events);
its day is the charge's `created` day in RECON_TIMEZONE, looked up when the event does not carry
it (one retrieve per charge).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import stripe

from recon_dagster.sources.stripe_charges import retrieve_charges, retrieve_objects
from recon_dagster.sources.stripe_client import list_all
from recon_dagster.sources.stripe_connect import destination_of, field_of

LATE_CHANGE_TYPES = (
    "charge.refunded",
    "charge.refund.updated",
    "charge.captured",
    "charge.succeeded",
    "charge.failed",
    "charge.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)
# A payout's changes re-open its arrival date in the payouts domain (Stripe's `types[]` takes up to
# 20).
PAYOUT_CHANGE_TYPES = (
    "payout.updated",
    "payout.paid",
    "payout.failed",
    "payout.canceled",
    "payout.reconciliation_completed",
)
RETENTION_DAYS = 30  # Stripe keeps events this long


@dataclass(frozen=True)
class Change:
    """One event, as far as a day's reconciliation cares."""

    event_id: str
    type: str
    created: int  # the event's time, epoch seconds
    charge_id: str | None
    charge_created: int | None  # the charge's time, when the event carried the charge
    # A payout event: the arrival dates it touches (now, and before when the event moved it), as UTC
    # dates.
    payout_days: tuple[date, ...] = ()
    # Stripe Connect: a platform's destination charge is its destination account's sale, so its
    # change re-opens that account's day (`with_destinations`).
    destination: str | None = None


@dataclass(frozen=True)
class Cursor:
    """Events up to `created` are read, and those at `created` itself with these ids (Stripe's
    `created` has whole seconds, so several events may share the last one). `read_at`: when
    events were last read (None: at `created`); a quiet account's cursor stays at its last event
    while it is read every tick, so only `read_at` tells whether Stripe's retention left a gap."""

    created: int
    seen: tuple[str, ...] = ()
    read_at: int | None = None

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "created": self.created,
                "seen": list(self.seen),
                **({"read_at": self.read_at} if self.read_at is not None else {}),
            }
        )

    @classmethod
    def loads(cls, text: str | None) -> Cursor | None:
        try:
            data = json.loads(text or "")
            if data.get("v") != 1:
                return None
            read_at = data.get("read_at")
            return cls(
                int(data["created"]),
                tuple(data.get("seen", ())),
                int(read_at) if read_at is not None else None,
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    @property
    def last_read(self) -> int:
        return self.created if self.read_at is None else self.read_at

    def advanced(self, changes: list[Change], read_at: int | None = None) -> Cursor:
        """Past `changes` (the events just read), read at `read_at`."""
        read_at = self.read_at if read_at is None else read_at
        if not changes:
            return Cursor(self.created, self.seen, read_at)
        newest = max(c.created for c in changes)
        at_newest = {c.event_id for c in changes if c.created == newest}
        return Cursor(
            newest,
            tuple(sorted(at_newest | (set(self.seen) if newest == self.created else set()))),
            read_at,
        )


def read_changes(
    client: stripe.StripeClient,
    after: Cursor,
    *,
    limit: int = 10_000,
    types: tuple[str, ...] = LATE_CHANGE_TYPES + PAYOUT_CHANGE_TYPES,
) -> list[Change]:
    """Events of `types` (default: the charges' and the payouts') not yet read past `after`, oldest
    first, at most `limit` (the rest next time: the cursor only moves past what was returned)."""
    params: dict[str, Any] = {"created": {"gte": after.created}, "types": list(types)}
    found = list_all(client, "/v1/events", params, "listing Stripe events")
    events = [e for e in found if isinstance(e, dict) and isinstance(e.get("id"), str)]
    changes = sorted(
        (_change(e) for e in events if e["id"] not in after.seen),
        key=lambda c: (c.created, c.event_id),
    )
    # Cut at a whole second, so the cursor's `seen` stays complete for its second.
    if len(changes) > limit:
        changes = [c for c in changes if c.created <= changes[limit - 1].created]
    return changes


def _change(event: dict) -> Change:
    obj = (event.get("data") or {}).get("object") or {}
    if obj.get("object") == "payout":
        previous = (event.get("data") or {}).get("previous_attributes") or {}
        arrivals = [
            obj.get("arrival_date"),
            previous.get("arrival_date") if isinstance(previous, dict) else None,
        ]
        days = tuple(
            sorted(
                {
                    datetime.fromtimestamp(a, UTC).date()
                    for a in arrivals
                    if isinstance(a, int) and not isinstance(a, bool)
                }
            )
        )
        return Change(
            event_id=event["id"],
            type=str(event.get("type")),
            created=int(event.get("created") or 0),
            charge_id=None,
            charge_created=None,
            payout_days=days,
        )
    destination = None
    if obj.get("object") == "charge":
        charge, created = obj.get("id"), obj.get("created")
        destination = destination_of(obj)
    else:  # a dispute (or a refund): its charge, whose time we look up
        charge = obj.get("charge")
        charge = charge.get("id") if isinstance(charge, dict) else charge
        created = None
    return Change(
        event_id=event["id"],
        type=str(event.get("type")),
        created=int(event.get("created") or 0),
        charge_id=charge if isinstance(charge, str) else None,
        charge_created=created
        if isinstance(created, int) and not isinstance(created, bool)
        else None,
        destination=destination,
    )


def with_destinations(client: stripe.StripeClient, changes: list[Change]) -> list[Change]:
    """A Connect platform's changes, each destination charge's with its destination account. A
    charge event carries its charge; a dispute event only the charge's id, so those charges are
    retrieved (one request each, disputes being few) for their destination and time."""
    wanted = sorted({c.charge_id for c in changes if c.charge_id and c.charge_created is None})
    found = dict(zip(wanted, retrieve_objects(client, wanted), strict=True))
    out = []
    for change in changes:
        charge = found.get(change.charge_id or "")
        if charge is not None and change.destination is None:
            created = field_of(charge, "created")
            change = replace(
                change,
                destination=destination_of(charge),
                charge_created=created if isinstance(created, int) else None,
            )
        out.append(change)
    return out


def payout_days_of(changes: list[Change]) -> dict[date, list[Change]]:
    """The payout changes by the arrival date they touch (a payout partition is its arrival
    date)."""
    out: dict[date, list[Change]] = {}
    for change in changes:
        for day in change.payout_days:
            out.setdefault(day, []).append(change)
    return out


def days_of(
    client: stripe.StripeClient, changes: list[Change], timezone: str
) -> dict[date, list[Change]]:
    """The changes by the day (in `timezone`) their charge was created on."""
    unknown = sorted({c.charge_id for c in changes if c.charge_created is None and c.charge_id})
    created = {c.charge_id: c.charge_created for c in changes if c.charge_created is not None}
    if unknown:
        found, _ = retrieve_charges(client, unknown)
        created |= {
            cid: int(ts.timestamp())
            for cid, ts in found.select("id", "created").iter_rows()
            if cid and ts
        }
    zone, out = ZoneInfo(timezone), {}
    for change in changes:
        when = created.get(change.charge_id) if change.charge_id else None
        if when is not None:
            out.setdefault(datetime.fromtimestamp(when, UTC).astimezone(zone).date(), []).append(
                change
            )
    return out
