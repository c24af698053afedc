"""Look up, across midnight, the counterparts of payments left unmatched inside a window.

Only the unmatched ids are looked up (by id, within the margin), so the neighbouring days are
never loaded whole.
"""

from datetime import datetime, timedelta

import polars as pl

from recon_dagster.core.keys import INTENT_PREFIX
from recon_dagster.core.reconcile import NeighbourLookup
from recon_dagster.sources.payments_db import PaymentsReader
from recon_dagster.sources.stripe_source import ChargeSource

# Past this many unmatched database rows, listing the two margin windows costs fewer Stripe
# requests than retrieving each charge by id.
MAX_RETRIEVE_BY_ID = 200


def _outside(
    frame: pl.DataFrame, column: str, start: datetime, end: datetime, margin: timedelta
) -> pl.DataFrame:
    ts = pl.col(column)
    near = (ts >= start - margin) & (ts < end + margin)
    return frame.filter(near & ((ts < start) | (ts >= end)))


def lookup_across_midnight(
    start: datetime,
    end: datetime,
    margin: timedelta,
    *,
    stripe: ChargeSource,
    payments: PaymentsReader,
) -> NeighbourLookup:
    """A `find_neighbours` for the core: Stripe by id (a PaymentIntent id: its charges), the
    payments table by id within the margin."""

    def find(
        stripe_only: list[str], db_only: list[str]
    ) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
        if margin <= timedelta(0):
            return None, None
        charges = None
        if len(db_only) > MAX_RETRIEVE_BY_ID:
            wanted = pl.col("id").is_in(db_only) | pl.col("payment_intent").is_in(db_only)
            before = stripe.list_charges(start - margin, start).filter(wanted)
            charges = pl.concat([before, stripe.list_charges(end, end + margin).filter(wanted)])
        elif db_only:
            intents = [i for i in db_only if i.startswith(INTENT_PREFIX)]
            others = [i for i in db_only if not i.startswith(INTENT_PREFIX)]
            found = [stripe.retrieve_charges(others)[0]] if others else []
            if intents:
                found.append(stripe.charges_of_intents(intents))
            charges = pl.concat(found) if found else None
        rows = payments.find_ids(stripe_only, start - margin, end + margin) if stripe_only else None
        return (
            _outside(charges, "created", start, end, margin) if charges is not None else None,
            _outside(rows, "created_at", start, end, margin) if rows is not None else None,
        )

    return find
