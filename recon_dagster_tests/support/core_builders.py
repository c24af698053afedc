"""Small builders for the core's input frames, shared by the core's tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from recon_dagster.core.frames import CHARGES_SCHEMA, PAYMENTS_SCHEMA
from recon_dagster.core.result import ReconcileParams

NOON = datetime(2024, 1, 1, 12, tzinfo=UTC)
DAY = date(2024, 1, 1)


def charge(
    id: str,
    amount: int,
    currency: str = "USD",
    *,
    status: str = "succeeded",
    captured: bool = True,
    refunded: int = 0,
    created: datetime = NOON,
    intent: str | None = None,
    amount_captured: int | None = None,
    dispute: tuple[str, str, int] | None = None,
) -> dict:
    """A charge; `dispute` is (dispute id, status, amount)."""
    captured_amount = (amount if captured else 0) if amount_captured is None else amount_captured
    row = dict(
        id=id,
        amount=amount,
        amount_captured=captured_amount,
        amount_refunded=refunded,
        currency=currency,
        status=status,
        paid=status == "succeeded",
        captured=captured,
        refunded=refunded == amount and amount > 0,
        created=created,
        payment_intent=intent,
        customer=None,
        disputed=dispute is not None,
    )
    if dispute is not None:
        row |= dict(
            dispute_id=dispute[0],
            dispute_status=dispute[1],
            dispute_reason="fraudulent",
            dispute_amount=dispute[2],
        )
    return row


def payment(
    id: str | None,
    amount: int | None,
    currency: str | None = "USD",
    *,
    status: str = "succeeded",
    refunded: int | None = None,
    created: datetime = NOON,
    invalid: tuple[str, str] | None = None,
) -> dict:
    """A payment row; `invalid` is (column, reason), as a source marks a row it could not read."""
    column, reason = invalid or (None, None)
    return dict(
        id=id,
        amount=amount,
        currency=currency,
        status=status,
        created_at=created,
        refunded=refunded,
        invalid_column=column,
        invalid_reason=reason,
    )


def charges(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=CHARGES_SCHEMA)


def payments(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=PAYMENTS_SCHEMA)


def params(**overrides) -> ReconcileParams:
    return ReconcileParams(**{"start": DAY, "end": DAY, **overrides})
