"""Small builders for the core's input frames, shared by the core's tests."""

from __future__ import annotations

from datetime import date, datetime, timezone

import polars as pl

from recon_dagster.core.frames import CHARGES_SCHEMA, PAYMENTS_SCHEMA
from recon_dagster.core.result import ReconcileParams

NOON = datetime(2024, 1, 1, 12, tzinfo=timezone.utc)
DAY = date(2024, 1, 1)


def charge(id: str, amount: int, currency: str = "USD", *, status: str = "succeeded", captured: bool = True,
           refunded: int = 0, created: datetime = NOON) -> dict:  # fmt: skip
    return dict(id=id, amount=amount, amount_captured=amount if captured else 0, amount_refunded=refunded,
                currency=currency, status=status, paid=status == "succeeded", captured=captured,
                refunded=refunded == amount and amount > 0, created=created, payment_intent=None, customer=None)  # fmt: skip


def payment(id: str, amount: int, currency: str = "USD", *, status: str = "succeeded", refunded: int | None = None,
            created: datetime = NOON) -> dict:  # fmt: skip
    return dict(id=id, amount=amount, currency=currency, status=status, created_at=created, refunded=refunded)


def charges(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=CHARGES_SCHEMA)


def payments(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=PAYMENTS_SCHEMA)


def params(**overrides) -> ReconcileParams:
    return ReconcileParams(**{"start": DAY, "end": DAY, **overrides})
