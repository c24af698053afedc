"""`Finding`: one payment in one discrepancy class, the unit every report, alert and line item
lists. Apart from `result` so that `finding_frame` (which needs Polars) can build them without
`result` importing Polars at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Finding:
    """One payment in one discrepancy class.

    `difference` is the money at stake, signed as Stripe minus database, in `currency`; it is
    what the gross discrepancy adds up (0 for timing differences, which are reported only).
    """

    kind: str
    payment_id: str
    currency: str
    stripe_amount: int | None = None
    database_amount: int | None = None
    difference: int = 0
    stripe_status: str | None = None
    database_status: str | None = None
    stripe_currency: str | None = None
    database_currency: str | None = None
    stripe_refunded: int | None = None
    database_refunded: int | None = None
    database_count: int | None = None
    stripe_created: datetime | None = None
    database_created: datetime | None = None
    detail: str = ""
    database_id: str | None = (
        None  # the table's id when it is not `payment_id` (a PaymentIntent id)
    )
    dispute_id: str | None = None
    dispute_status: str | None = None
    source: str | None = None  # invalid_rows: "stripe" or "database"
    column: str | None = None  # invalid_rows: the field or column at fault
