"""Stripe Connect: whose sale each charge is, across the platform and its connected accounts.

A destination charge is made on the platform with `transfer_data.destination`; Stripe transfers
its funds to that account, which receives them as a payment (`py_…`, with `source_transfer`). The
application records the sale once, under the account it was made for, with the platform charge's
id. So a destination charge is reconciled on its destination account, never twice:
- the platform's own sales leave out every charge with a destination (`is_destination_charge`);
- a connected account's sales leave out the payments that transfers made (`is_transfer_payment`)
  and take the platform's charges whose transfers went to it (`destination_charges`).
Direct charges (made on the connected account, an application fee to the platform) stay where
they were made. No Dagster here.
"""

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import stripe

from recon_dagster.sources.stripe_charges import charge_row, rows_to_frame
from recon_dagster.sources.stripe_client import ceil_seconds, list_all

# A charge's transfer is made when the charge is captured: an authorisation is captured within
# 7 days (Stripe's limit for cards), so transfers up to 7 days after the window find its charges.
CAPTURE_DAYS = 7


def field_of(obj: Any, name: str) -> Any:
    """A field of a JSON object or an SDK `StripeObject` (not a dict), or None."""
    try:
        return obj[name]
    except (KeyError, TypeError, IndexError, AttributeError):
        return None


def id_of(value: Any) -> str | None:
    """An id, or an expanded object's id."""
    value = value if isinstance(value, str) else field_of(value, "id")
    return value if isinstance(value, str) and value else None


def destination_of(charge: Any) -> str | None:
    """The connected account a platform charge's funds go to (`transfer_data.destination`)."""
    return id_of(field_of(field_of(charge, "transfer_data"), "destination"))


def is_destination_charge(charge: Any) -> bool:
    """A platform charge whose sale is its destination account's."""
    return destination_of(charge) is not None


def is_transfer_payment(charge: Any) -> bool:
    """A connected account's payment that a platform transfer made (a destination charge's funds,
    or a separate transfer): not a sale of its own."""
    return id_of(field_of(charge, "source_transfer")) is not None


def destination_charges(
    platform: stripe.StripeClient, destination: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """The platform's charges created in [start, end) whose funds go to `destination`, in
    `CHARGES_SCHEMA`: from the platform's transfers to it (`GET /v1/transfers?destination=`, the
    charge expanded), so a connected account's day costs its own transfers' pages, not the
    platform's whole day. A transfer without a source charge (a separate transfer) or whose charge
    names another destination is the platform's own money movement, not this account's sale."""
    low, high = ceil_seconds(start), ceil_seconds(end)
    until = ceil_seconds(end + timedelta(days=CAPTURE_DAYS))
    context = (
        f"listing the platform's transfers to {destination} for charges created in "
        f"[{start.isoformat()}, {end.isoformat()})"
    )
    params = {
        "destination": destination,
        "created": {"gte": low, "lt": until},
        "expand": ["data.source_transaction"],
    }
    rows = []
    for transfer in list_all(platform, "/v1/transfers", params, context):
        charge = field_of(transfer, "source_transaction")
        if not isinstance(charge, dict) or destination_of(charge) != destination:
            continue
        created = charge.get("created")
        if not isinstance(created, int) or isinstance(created, bool) or low <= created < high:
            rows.append(charge_row(charge, len(rows)))  # one without a time is kept, as invalid
    return rows_to_frame(rows).unique(subset="id", keep="first", maintain_order=True)
