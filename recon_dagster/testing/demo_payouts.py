"""The demo's payouts: each day's card sales paid out the next day, per currency, fees included,
and the bank lines those payouts became, with the stories a finance team meets: a payout that
never reached the bank, a failed payout, and a deposit no payout explains."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from recon_dagster.testing.stripe_server import (
    PAYOUT_FIELD,
    make_balance_transaction,
    make_payout,
    payout_transactions,
)

FEE = {"usd": (29, 30), "eur": (25, 25), "jpy": (36, 0)}  # per mille, fixed (minor units)
DISPUTE_FEE = {"usd": 1500, "eur": 1500, "jpy": 1500}

BANK_DDL = (
    "create table bank_lines (id varchar primary key, booked_on date not null, "
    "amount bigint not null, currency varchar(3) not null, memo varchar)"
)


@dataclass
class DemoPayouts:
    payouts: list[dict] = field(default_factory=list)
    transactions: list[dict] = field(default_factory=list)
    bank_lines: list[dict] = field(default_factory=list)
    seeded: dict[str, list[str]] = field(default_factory=dict)  # story -> payout or deposit ids


def _midnight(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


def build_demo_payouts(
    days: list[date], timezone: str, charges: list[dict], disputes: list[dict], *, seed: int = 11
) -> DemoPayouts:
    """Payouts arriving on days[1:], each paying out the previous day's sales in one currency;
    the last day's sales are in the balance, not yet paid out. Every movement of the balance has
    its balance transaction, so the week rolls forward to Stripe's balance."""
    rng = random.Random(seed)
    out = DemoPayouts(seeded={"missing_in_bank": [], "failed": [], "deposits_without_payout": []})
    tz = ZoneInfo(timezone)
    lost = {d["charge"]: d for d in disputes if d.get("status") == "lost"}
    for n, (sold, arrival) in enumerate(zip(days, [*days[1:], None], strict=True)):
        start = int(datetime.combine(sold, time(0), tzinfo=tz).timestamp())
        end = int(datetime.combine(sold + timedelta(days=1), time(0), tzinfo=tz).timestamp())
        settled = [
            c
            for c in charges
            if start <= c["created"] < end and c["status"] == "succeeded" and c["amount_captured"]
        ]
        for currency in sorted({c["currency"] for c in settled}):
            # The payout these sales go out in; the last day's stay in the balance.
            pid = f"po_demo{(arrival or sold):%m%d}{currency}"
            txns = []
            for c in (c for c in settled if c["currency"] == currency):
                per_mille, fixed = FEE[currency]
                txns.append(
                    make_balance_transaction(
                        f"txn_{c['id'][3:]}",
                        c["amount_captured"],
                        fee=c["amount_captured"] * per_mille // 1000 + fixed,
                        currency=currency,
                        type="charge",
                        source=c["id"],
                        payout=pid,
                        created=c["created"],
                    )
                )
                if c["amount_refunded"]:
                    txns.append(
                        make_balance_transaction(
                            f"txn_re{c['id'][3:]}",
                            -c["amount_refunded"],
                            currency=currency,
                            type="refund",
                            source=f"re_{c['id'][3:]}",
                            payout=pid,
                            created=c["created"] + 600,
                        )
                    )
                if c["id"] in lost:
                    txns.append(
                        make_balance_transaction(
                            f"txn_du{c['id'][3:]}",
                            -lost[c["id"]]["amount"],
                            fee=DISPUTE_FEE[currency],
                            currency=currency,
                            type="adjustment",
                            reporting_category="dispute",
                            source=lost[c["id"]]["id"],
                            payout=pid,
                            created=c["created"] + 3_600,
                        )
                    )
            amount = sum(t["net"] for t in txns)
            if arrival is None or amount <= 0:  # not paid out (yet): the money stays in Stripe
                out.transactions += [{**t, PAYOUT_FIELD: None} for t in txns]
                continue
            trace = f"DEMO{rng.randrange(10**9, 10**10)}"
            failed = n == 1 and currency == "usd"  # the bank refused the second day's USD payout
            payout = make_payout(
                pid,
                amount,
                currency,
                arrival_date=_midnight(arrival),
                created=_midnight(arrival) - 6 * 3_600,  # the evening before it arrives
                trace_id=trace,
                status="failed" if failed else "paid",
                failure_code="account_closed" if failed else None,
                failure_message="The bank account has been closed." if failed else None,
            )
            out.payouts.append(payout)
            out.transactions += [*txns, payout_transactions(payout)]
            if failed:
                out.seeded["failed"].append(pid)
                # The bank refused it: Stripe puts the money back in the balance.
                out.transactions.append(
                    make_balance_transaction(
                        f"txn_pf{pid[3:]}",
                        amount,
                        currency=currency,
                        type="payout_failure",
                        reporting_category="payout_reversal",
                        source=pid,
                        created=_midnight(arrival),
                    )
                )
            elif n == 0 and currency == "usd":
                # The first USD payout never showed up on the statement.
                out.seeded["missing_in_bank"].append(pid)
            else:
                booked = arrival + timedelta(days=0 if currency == "usd" else 1)
                out.bank_lines.append(
                    {
                        "id": f"bl_{pid[3:]}",
                        "booked_on": booked,
                        "amount": amount,
                        "currency": currency.upper(),
                        "memo": f"STRIPE PAYOUT {trace}" if currency == "usd" else f"STRIPE {pid}",
                    }
                )
    orphan = {
        "id": "bl_demo_orphan",
        "booked_on": days[-1],
        "amount": 12_345,
        "currency": "USD",
        "memo": "STRIPE TRANSFER 8812",
    }
    out.bank_lines.append(orphan)
    out.seeded["deposits_without_payout"].append(orphan["id"])
    out.bank_lines.append(
        {
            "id": "bl_demo_rent",
            "booked_on": days[-1],
            "amount": -250_000,
            "currency": "USD",
            "memo": "OFFICE RENT",
        }
    )
    return out
