"""The four frames payout reconciliation reads, as typed Polars schemas.

A payout is one transfer of Stripe balance to the bank. For an automatic payout Stripe can list
the balance transactions it paid out (`balance_transactions?payout=po_...`); that list includes
the payout's own transaction (type `payout`), which the core leaves out of every sum. A manual
payout has no such list. The bank side is the statement lines the team loads, of which only the
deposits (positive amounts) can be payouts. Money is Int64 minor units, timestamps UTC, currency
codes upper-case ISO 4217, as in `frames`: sources normalise, the core trusts.
"""

from __future__ import annotations

import polars as pl

from recon_dagster.core.frames import UTC_TS

PAYOUT_STATUSES: tuple[str, ...] = ("paid", "pending", "in_transit", "canceled", "failed")
# The statuses of a payout that will never reach the bank.
FAILED_STATUSES: tuple[str, ...] = ("failed", "canceled")

# One row per payout: the reported ones, and those just before the window that may own deposits in
# it.
PAYOUTS_SCHEMA = pl.Schema(
    {
        "id": pl.String(),
        "amount": pl.Int64(),  # positive: money sent to the bank
        "currency": pl.String(),
        "arrival_date": pl.Date(),  # the date Stripe expects the money in the bank
        "status": pl.String(),  # one of PAYOUT_STATUSES
        "automatic": pl.Boolean(),  # only automatic payouts can be itemized
        "failure_code": pl.String(),
        "trace_id": pl.String(),  # the bank's trace number, when Stripe has it (nullable)
        "created": UTC_TS,
    }
)

# One row per balance transaction of an automatic payout, its own `payout` transaction included.
PAYOUT_TRANSACTIONS_SCHEMA = pl.Schema(
    {
        "id": pl.String(),
        "payout": pl.String(),  # the payout it was paid out in
        "amount": pl.Int64(),  # gross, signed as it moves the balance
        "fee": pl.Int64(),  # Stripe's fee on it (positive: taken from the balance)
        "net": pl.Int64(),  # amount - fee
        "currency": pl.String(),
        "type": pl.String(),
        "reporting_category": pl.String(),
        "source": pl.String(),  # ch_/py_/re_/du_/po_ id, or null
        "charge": pl.String(),  # the charge id of a charge-category row, else null
        "payment_intent": pl.String(),  # that charge's PaymentIntent, when known
        "created": UTC_TS,
    }
)

# One row per bank statement line; only deposits (amount > 0) are looked at.
BANK_SCHEMA = pl.Schema(
    {
        "id": pl.String(),
        "amount": pl.Int64(),
        "currency": pl.String(),
        "date": pl.Date(),
        "reference": pl.String(),  # the statement's free text (nullable)
    }
)

# The columns of the application's payments table rows that the charge checks need: any frame with
# them will do (a `frames.PAYMENTS_SCHEMA` frame does). `id` is a charge or a PaymentIntent id, and
# several rows may share it.
PAYMENT_ROWS_SCHEMA = pl.Schema(
    {
        "id": pl.String(),
        "amount": pl.Int64(),
        "currency": pl.String(),
    }
)


def empty_payouts() -> pl.DataFrame:
    return pl.DataFrame(schema=PAYOUTS_SCHEMA)


def empty_payout_transactions() -> pl.DataFrame:
    return pl.DataFrame(schema=PAYOUT_TRANSACTIONS_SCHEMA)


def empty_bank() -> pl.DataFrame:
    return pl.DataFrame(schema=BANK_SCHEMA)


def empty_payment_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=PAYMENT_ROWS_SCHEMA)
