"""The disputes of a window's disputed charges, through Stripe's Disputes API, onto the charges
frame.

A charge says only `disputed: true`; the dispute's status (open, won, lost), reason and amount
come from `GET /v1/disputes`. Stripe keeps one dispute per charge. Disputes are created after
their charge, often weeks later, so they are looked up when the day is reconciled, by charge id
for a few charges, or by listing every dispute created since the window began for many.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
import stripe

from recon_dagster.sources.stripe_client import ceil_seconds, list_all, run_all

# Up to this many disputed charges, one `?charge=` request each; past it, listing the disputes
# created since the window began takes fewer requests (a page holds 100).
MAX_BY_CHARGE = 100
DISPUTE_COLUMNS = pl.Schema(
    {
        "id": pl.String(),  # the charge's id
        "dispute_id": pl.String(),
        "dispute_status": pl.String(),
        "dispute_reason": pl.String(),
        "dispute_amount": pl.Int64(),
    }
)


def _row(dispute: Any) -> tuple | None:
    """(charge id, dispute id, status, reason, amount), or None for an object that is not one."""
    if not isinstance(dispute, dict):
        return None
    charge = dispute.get("charge")
    charge = charge.get("id") if isinstance(charge, dict) else charge
    amount = dispute.get("amount")
    if not isinstance(charge, str) or isinstance(amount, bool) or not isinstance(amount, int):
        return None
    return charge, dispute.get("id"), dispute.get("status"), dispute.get("reason"), amount


def _list(client: stripe.StripeClient, params: dict[str, Any], context: str) -> list[tuple]:
    return [
        r for r in map(_row, list_all(client, "/v1/disputes", params, context)) if r is not None
    ]


def fetch_disputes(
    client: stripe.StripeClient, charge_ids: list[str], since: datetime, *, max_workers: int = 8
) -> pl.DataFrame:
    """The dispute of each of `charge_ids` (charges created at or after `since`), as
    `DISPUTE_COLUMNS`."""
    wanted = list(dict.fromkeys(charge_ids))
    if not wanted:
        return pl.DataFrame(schema=DISPUTE_COLUMNS)
    if len(wanted) <= MAX_BY_CHARGE:
        per_charge = run_all(
            lambda cid: _list(client, {"charge": cid}, f"listing the disputes of charge {cid}"),
            wanted,
            max_workers,
        )
        rows = [row for rows in per_charge for row in rows]
    else:
        rows = _list(
            client,
            {"created": {"gte": ceil_seconds(since)}},
            f"listing disputes created since {since.isoformat()}",
        )
    frame = pl.DataFrame(rows, schema=DISPUTE_COLUMNS, orient="row")
    return frame.filter(pl.col("id").is_in(wanted)).unique("id", keep="last", maintain_order=True)


def attach_disputes(charges: pl.DataFrame, disputes: pl.DataFrame) -> pl.DataFrame:
    """`charges` with their dispute's columns filled in (null where there is none)."""
    if disputes.is_empty():
        return charges
    names = charges.columns
    return charges.drop(list(DISPUTE_COLUMNS)[1:]).join(disputes, on="id", how="left").select(names)


def disputed_ids(charges: pl.DataFrame) -> list[str]:
    return (
        charges.filter(pl.col("disputed").fill_null(False) & pl.col("id").is_not_null())
        .get_column("id")
        .to_list()
    )


def with_disputes(
    client: stripe.StripeClient, charges: pl.DataFrame, since: datetime
) -> pl.DataFrame:
    """`charges` with the disputes of those marked disputed (one Disputes API look-up per
    window)."""
    ids = disputed_ids(charges)
    return attach_disputes(charges, fetch_disputes(client, ids, since)) if ids else charges
