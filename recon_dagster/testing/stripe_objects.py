"""Stripe objects as Stripe's API returns them (charges, disputes, payouts, balance transactions),
for the local Stripe server, tests, the demo and benchmarks. Each builder fills every field a real
object has, with overrides for anything (even nonsense, to test what a malformed object does)."""

from __future__ import annotations

from typing import Any

# A fixed default `created` (2024-01-01T00:00:00Z) keeps fixtures deterministic.
DEFAULT_CREATED = 1_704_067_200
# Where a balance transaction keeps the payout it was paid out in. Stripe never sends it (it is only
# the `payout` list filter), so the server never does either; files keep it under this key.
PAYOUT_FIELD = "_payout"
DEFAULT_DESTINATION = (
    "ba_recon_local"  # the bank account payouts go to unless a payout says otherwise
)


def make_charge(
    id: str,  # Stripe's field name
    amount: int,
    currency: str = "usd",
    created: int = DEFAULT_CREATED,
    status: str = "succeeded",
    captured: bool = True,
    amount_refunded: int = 0,
    customer: str | None = None,
    payment_intent: str | None = None,
    amount_captured: int | None = None,
    disputed: bool = False,
    **overrides: Any,
) -> dict:
    """A full charge object as Stripe's API returns it; `overrides` replace any field (even with
    nonsense).

    `amount_captured` below `amount` is a partial capture. The uncaptured rest is not counted in
    `amount_refunded`, which stays what the caller gives: reconciliation nets captured minus
    refunded.
    """
    suffix = id.split("_", 1)[-1]
    if amount_captured is None:
        amount_captured = amount if captured else 0
    charge = {
        "id": id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount_captured,
        "amount_refunded": amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": f"txn_{suffix}" if captured and status == "succeeded" else None,
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
        },
        "calculated_statement_descriptor": "RECON DEMO",
        "captured": captured,
        "created": created,
        "currency": currency.lower(),
        "customer": customer,
        "description": None,
        "disputed": disputed,
        "failure_code": "card_declined" if status == "failed" else None,
        "failure_message": "Your card was declined." if status == "failed" else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "network_status": "declined_by_network"
            if status == "failed"
            else "approved_by_network",
            "reason": "generic_decline" if status == "failed" else None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "The bank did not return any further details."
            if status == "failed"
            else "Payment complete.",
            "type": "issuer_declined" if status == "failed" else "authorized",
        },
        "paid": status == "succeeded",
        "payment_intent": payment_intent,
        "payment_method": f"pm_{suffix}",
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "country": "US",
                "exp_month": 12,
                "exp_year": 2030,
                "funding": "credit",
                "last4": "4242",
                "network": "visa",
            },
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/test/{suffix}",
        "refunded": isinstance(amount, int) and amount > 0 and amount_refunded == amount,
        "refunds": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/charges/{id}/refunds",
        },
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }
    charge.update(overrides)
    return charge


# Every evidence field Stripe returns, all null until evidence is submitted.
_EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)
EVIDENCE_DAYS = (
    7  # how long after a dispute opens its evidence is due (Stripe's is 7 to 21 days, by network)
)


def make_dispute(
    id: str,  # Stripe's field name
    charge: str,
    amount: int,
    currency: str = "usd",
    status: str = "needs_response",
    reason: str = "fraudulent",
    created: int = DEFAULT_CREATED,
    payment_intent: str | None = None,
    **overrides: Any,
) -> dict:
    """A full dispute object as Stripe's API returns it; `overrides` replace any field (even with
    nonsense).

    Statuses: `warning_needs_response`, `warning_under_review`, `warning_closed` (an inquiry, which
    may become a chargeback), `needs_response`, `under_review`, `won`, `lost`, `prevented`.
    """
    inquiry = isinstance(status, str) and status.startswith("warning_")
    # Evidence sent: a dispute under review, or one won (a lost one is as often accepted
    # unanswered).
    answered = status in ("warning_under_review", "under_review", "won")
    dispute = {
        "id": id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": charge,
        "created": created,
        "currency": currency.lower(),
        "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(_EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": created + EVIDENCE_DAYS * 86_400 if isinstance(created, int) else None,
            "enhanced_eligibility": {},
            "has_evidence": answered,
            "past_due": False,
            "submission_count": 1 if answered else 0,
        },
        # Only an inquiry leaves the charge refundable; a chargeback has already taken the money
        # back.
        "is_charge_refundable": inquiry,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment_intent,
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "case_type": "inquiry" if inquiry else "chargeback",
                "network_reason_code": None,
            },
            "type": "card",
        },
        "reason": reason,
        "status": status,
    }
    dispute.update(overrides)
    return dispute


_REPORTING_CATEGORIES = {
    "charge": "charge",
    "payment": "charge",
    "refund": "refund",
    "payment_refund": "refund",
    "adjustment": "adjustment",
    "stripe_fee": "fee",
    "payout": "payout",
    "application_fee": "platform_earning",
    "application_fee_refund": "platform_earning_refund",
    "transfer_refund": "transfer_reversal",
}


def make_payout(
    pid: str,
    amount: int,
    currency: str = "usd",
    *,
    arrival_date: int,
    created: int | None = None,
    status: str = "paid",
    automatic: bool = True,
    failure_code: str | None = None,
    failure_message: str | None = None,
    trace_id: str | None = None,
    balance_transaction: str | None = None,
    **overrides: Any,
) -> dict:
    """A full payout object as Stripe's API returns it; `overrides` replace any field (even with
    nonsense).

    Stripe's `arrival_date` is midnight UTC of the day the bank should have the money; `created`
    defaults to two days before it, a standard payout's usual transit. `balance_transaction`
    defaults to `txn_<pid>`, which no `make_charge` transaction id can equal. Statuses: `pending`,
    `in_transit`, `paid`, `failed`, `canceled`.
    """
    if created is None:
        created = arrival_date - 2 * 86_400
    # A trace id comes from the bank once the payout is on its way; until then it is pending.
    trace = {
        "status": "pending" if status in ("pending", "in_transit") else "unsupported",
        "value": None,
    }
    payout = {
        "id": pid,
        "object": "payout",
        "amount": amount,
        "application_fee": None,
        "application_fee_amount": None,
        "arrival_date": arrival_date,
        "automatic": automatic,
        "balance_transaction": balance_transaction or f"txn_{pid}",
        "created": created,
        "currency": currency.lower(),
        "description": None,
        "destination": DEFAULT_DESTINATION,
        "failure_balance_transaction": None,
        "failure_code": failure_code,
        "failure_message": failure_message,
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "original_payout": None,
        # Only an automatic payout's transactions can be listed by `payout=`; a manual one has none
        # to reconcile.
        "reconciliation_status": "completed" if automatic else "not_applicable",
        "reversed_by": None,
        "source_type": "card",
        "statement_descriptor": None,
        "status": status,
        "trace_id": {"status": "supported", "value": trace_id} if trace_id else trace,
        "type": "bank",
    }
    payout.update(overrides)
    return payout


def make_balance_transaction(
    tid: str,
    amount: int,
    *,
    fee: int = 0,
    currency: str = "usd",
    type: str = "charge",  # Stripe's field name
    reporting_category: str | None = None,
    source: str | None = None,
    payout: str | None = None,
    created: int,
    available_on: int | None = None,
    description: str | None = None,
    **overrides: Any,
) -> dict:
    """A full balance transaction as Stripe's API returns it, plus `_payout` (`PAYOUT_FIELD`): the
    payout it was paid out in, which the server keeps for the `payout` filter and never sends.

    `reporting_category` follows `type` when not given; `available_on` defaults to `created`;
    `overrides` replace any field (even with nonsense).
    """
    currency = currency.lower()
    stripe_fee = {
        "amount": fee,
        "application": None,
        "currency": currency,
        "description": "Stripe processing fees",
        "type": "stripe_fee",
    }
    transaction = {
        "id": tid,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created if available_on is None else available_on,
        "created": created,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": [stripe_fee] if fee else [],
        "net": amount - fee,
        "reporting_category": reporting_category or _REPORTING_CATEGORIES.get(type, type),
        "source": source,
        "status": "available",
        "type": type,
        PAYOUT_FIELD: payout,
    }
    transaction.update(overrides)
    return transaction


def payout_transactions(payout: dict) -> dict:
    """The payout's own balance transaction: `type` `payout`, minus its amount, paid out in the
    payout itself (Stripe lists it under `payout=` with the transactions the payout paid out)."""
    return make_balance_transaction(
        payout["balance_transaction"],
        -payout["amount"],
        currency=payout["currency"],
        type="payout",
        source=payout["id"],
        payout=payout["id"],
        created=payout["created"],
        description=payout.get("description"),
    )
