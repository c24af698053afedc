"""Stripe Connect's objects for one sale, on both sides, as Stripe makes them: a destination
charge (the platform's charge, its transfer and application fee, the connected account's payment)
and a direct charge with an application fee, each with its balance transactions.

The amounts follow Stripe's flow of funds for `application_fee_amount`: the whole charge is
transferred to the connected account, whose payment's balance transaction pays the fee back
(its `fee`), and the platform books the fee as `application_fee` (reporting category
`platform_earning`).
"""

from dataclasses import dataclass, field

from recon_dagster.testing.stripe_objects import make_balance_transaction, make_charge


@dataclass
class ConnectSale:
    """One sale's objects: what the platform holds and what the connected account holds."""

    platform_charges: list[dict] = field(default_factory=list)
    transfers: list[dict] = field(default_factory=list)
    platform_transactions: list[dict] = field(default_factory=list)
    account_charges: list[dict] = field(default_factory=list)
    account_transactions: list[dict] = field(default_factory=list)


def destination_charge(
    charge_id: str,
    amount: int,
    destination: str,
    *,
    created: int,
    currency: str = "usd",
    application_fee: int = 0,
    stripe_fee: int = 0,
    on_behalf_of: bool = False,
    refunded: int = 0,
    payout: str | None = None,
) -> ConnectSale:
    """A charge on the platform whose funds go to `destination`: the platform's charge, transfer
    and application fee, the account's payment (`py_…`); `refunded` is refunded with the transfer
    reversed (`reverse_transfer`) and the fee refunded in proportion; `payout`: the account's
    payout that paid the payment out."""
    suffix = charge_id.split("_", 1)[-1]
    transfer, payment, fee = f"tr_{suffix}", f"py_{suffix}", f"fee_{suffix}"
    charge = make_charge(
        charge_id,
        amount,
        currency,
        created=created,
        amount_refunded=refunded,
        transfer_data={"amount": None, "destination": destination},
        transfer=transfer,
        on_behalf_of=destination if on_behalf_of else None,
        application_fee=fee if application_fee else None,
        application_fee_amount=application_fee or None,
    )
    sale = ConnectSale(platform_charges=[charge])
    sale.transfers.append(
        {
            "id": transfer,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": refunded,
            "currency": currency,
            "created": created,
            "destination": destination,
            "destination_payment": payment,
            "source_transaction": charge_id,
            "reversed": refunded == amount,
            "transfer_group": f"group_{charge_id}",
        }
    )
    sale.account_charges.append(
        make_charge(
            payment,
            amount,
            currency,
            created=created,
            amount_refunded=refunded,
            source_transfer=transfer,
            balance_transaction=f"txn_{payment}",
        )
    )
    add = sale.platform_transactions.append
    add(_txn(f"txn_{charge_id}", amount, currency, "charge", charge_id, created, fee=stripe_fee))
    add(_txn(f"txn_{transfer}", -amount, currency, "transfer", transfer, created))
    sale.account_transactions.append(
        _txn(
            f"txn_{payment}",
            amount,
            currency,
            "payment",
            payment,
            created,
            fee=application_fee,
            payout=payout,
        )
    )
    if application_fee:
        add(_txn(f"txn_{fee}", application_fee, currency, "application_fee", fee, created))
    if refunded:
        fee_back = application_fee * refunded // amount
        add(_txn(f"txn_re_{suffix}", -refunded, currency, "refund", f"re_{suffix}", created))
        add(_txn(f"txn_trr_{suffix}", refunded, currency, "transfer_refund", transfer, created))
        sale.account_transactions.append(
            _txn(f"txn_pyr_{suffix}", -refunded, currency, "payment_refund", payment, created)
        )
        if fee_back:
            refund_fee = "application_fee_refund"
            add(_txn(f"txn_fr_{suffix}", -fee_back, currency, refund_fee, fee, created))
    return sale


def direct_charge(
    charge_id: str,
    amount: int,
    *,
    created: int,
    currency: str = "usd",
    application_fee: int,
    fee_refunded: int = 0,
    stripe_fee: int = 0,
    payout: str | None = None,
) -> ConnectSale:
    """A charge on a connected account with an application fee to the platform; `fee_refunded`
    of the fee given back to the account."""
    suffix = charge_id.split("_", 1)[-1]
    fee = f"fee_{suffix}"
    sale = ConnectSale(
        account_charges=[
            make_charge(
                charge_id,
                amount,
                currency,
                created=created,
                application_fee=fee,
                application_fee_amount=application_fee,
            )
        ]
    )
    sale.account_transactions.append(
        _txn(
            f"txn_{charge_id}",
            amount,
            currency,
            "charge",
            charge_id,
            created,
            fee=stripe_fee + application_fee,
            payout=payout,
        )
    )
    add = sale.platform_transactions.append
    add(_txn(f"txn_{fee}", application_fee, currency, "application_fee", fee, created))
    if fee_refunded:
        add(
            _txn(
                f"txn_fr_{suffix}", -fee_refunded, currency, "application_fee_refund", fee, created
            )
        )
    return sale


def _txn(
    tid: str,
    amount: int,
    currency: str,
    type_: str,
    source: str,
    created: int,
    *,
    fee: int = 0,
    payout: str | None = None,
) -> dict:
    return make_balance_transaction(
        tid,
        amount,
        fee=fee,
        currency=currency,
        type=type_,
        source=source,
        payout=payout,
        created=created,
    )
