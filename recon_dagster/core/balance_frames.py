"""The balance transactions a month close reads, as a typed Polars schema, and Stripe's reporting
categories.

Every movement of a Stripe balance is one balance transaction: `amount` is the gross (signed as it
moves the balance), `fee` what Stripe took from it, `net = amount - fee`. The sum of `net` over all
of an account's transactions in a currency is its balance in that currency (available + pending).
Money is Int64 minor units, timestamps UTC, currency codes upper-case ISO 4217; a transaction the
source could not read keeps its id and `invalid_reason`, and the core quarantines it.
"""

from __future__ import annotations

import polars as pl

from recon_dagster.core.frames import UTC_TS

# Stripe's `reporting_category` values (docs.stripe.com/reports/reporting-categories). Stripe adds
# categories: one not listed here is kept, summed under `UNMAPPED` and named, never dropped.
REPORTING_CATEGORIES: tuple[str, ...] = (
    "charge",
    "refund",
    "partial_capture_reversal",
    "charge_failure",
    "refund_failure",
    "dispute",
    "dispute_reversal",
    "fee",
    "other_adjustment",
    "risk_reserved_funds",
    "connect_reserved_funds",
    "transfer",
    "transfer_reversal",
    "platform_earning",
    "platform_earning_refund",
    "payout",
    "payout_reversal",
    "topup",
    "topup_reversal",
    "tax",
    "network_cost",
    "advance",
    "advance_funding",
    "anticipation_repayment",
    "climate_order_purchase",
    "climate_order_refund",
    "connect_collection_transfer",
    "contribution",
    "financing_paydown",
    "financing_paydown_reversal",
    "financing_payout",
    "financing_payout_reversal",
    "issuing_authorization_hold",
    "issuing_authorization_release",
    "issuing_dispute",
    "issuing_transaction",
    "unreconciled_customer_funds",
)
UNMAPPED = "unmapped"
# Money leaving for the bank (and coming back from it): the roll-forward's `payouts` column.
PAYOUT_CATEGORIES: tuple[str, ...] = ("payout", "payout_reversal")

# One row per balance transaction.
BALANCE_TRANSACTIONS_SCHEMA = pl.Schema(
    {
        "id": pl.String(),
        "created": UTC_TS,
        "available_on": UTC_TS,  # when the net becomes available (pending until then)
        "currency": pl.String(),
        "amount": pl.Int64(),
        "fee": pl.Int64(),
        "net": pl.Int64(),
        "type": pl.String(),
        "reporting_category": pl.String(),  # as Stripe sent it (falls back to `type`)
        "source": pl.String(),  # ch_/re_/du_/po_/tr_… id, or null
        "payout": pl.String(),  # the automatic payout that paid it out, when Stripe says
        # A transaction that failed validation: which field and why (null when valid). The core
        # quarantines it: it is named and the period is not tied out, but it is never summed.
        "invalid_column": pl.String(),
        "invalid_reason": pl.String(),
    }
)


def empty_balance_transactions() -> pl.DataFrame:
    return pl.DataFrame(schema=BALANCE_TRANSACTIONS_SCHEMA)


def category(reporting_category: pl.Expr) -> pl.Expr:
    """The bucket a reporting category is summed in: itself when Stripe documents it, else
    `unmapped`."""
    return (
        pl.when(reporting_category.is_in(REPORTING_CATEGORIES))
        .then(reporting_category)
        .otherwise(pl.lit(UNMAPPED))
    )
