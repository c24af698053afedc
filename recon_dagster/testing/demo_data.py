"""A realistic demo data set: Stripe charges and an application's payments table that disagree.

Deterministic for a seed. Days cycle through clean, warning and critical profiles, and every
discrepancy class appears with a plausible cause (a lost webhook, a manual entry, a refund the
application never heard of, a retried webhook stored twice, a charge just before midnight, a
chargeback, a checkout session id stored by mistake). As in most integrations since 2019, about
half of the table's rows hold the PaymentIntent id (`pi_`) rather than the charge id; some
intents have declined attempts before their success, some charges are partial captures, and some
are authorisations never captured.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from recon_dagster.testing.demo_payouts import BANK_DDL, DemoPayouts, build_demo_payouts
from recon_dagster.testing.stripe_server import make_charge, make_dispute

PROFILES = ("clean", "warning", "clean", "critical", "warning", "clean", "warning")
PRICES = {
    "USD": [999, 1900, 2900, 4900, 9900, 24900],
    "EUR": [900, 1900, 4500, 8900],
    "JPY": [1200, 3300, 9800, 15000],
}

PAYMENTS_DDL = """
create table payments (
    id bigint primary key,
    stripe_charge_id varchar not null,
    customer_email varchar,
    amount bigint not null,
    currency varchar(3) not null,
    status varchar not null,
    amount_refunded bigint not null default 0,
    created_at timestamptz not null
)
"""


@dataclass
class DemoDataset:
    days: list[date]
    timezone: str
    charges: list[dict] = field(default_factory=list)
    payments: list[dict] = field(default_factory=list)
    disputes: list[dict] = field(default_factory=list)
    profiles: dict[date, str] = field(default_factory=dict)
    seeded: dict[date, dict[str, list[str]]] = field(default_factory=dict)
    payouts: DemoPayouts = field(default_factory=DemoPayouts)

    def write(self, directory: Path) -> tuple[Path, Path]:
        """`stripe_charges.json`, `stripe_disputes.json`, `stripe_payouts.json` and
        `stripe_balance_transactions.json` for the Stripe server, and `app.duckdb` with a
        `payments` table and a `bank_lines` table."""
        directory.mkdir(parents=True, exist_ok=True)
        charges_path = directory / "stripe_charges.json"
        charges_path.write_text(json.dumps(self.charges))
        (directory / "stripe_disputes.json").write_text(json.dumps(self.disputes))
        (directory / "stripe_payouts.json").write_text(json.dumps(self.payouts.payouts))
        (directory / "stripe_balance_transactions.json").write_text(
            json.dumps(self.payouts.transactions)
        )
        db_path = directory / "app.duckdb"
        db_path.unlink(missing_ok=True)
        columns = [
            "stripe_charge_id",
            "customer_email",
            "amount",
            "currency",
            "status",
            "amount_refunded",
            "created_at",
        ]
        rows = pl.DataFrame(
            {c: [p[c] for p in self.payments] for c in columns},
            schema_overrides={"created_at": pl.Datetime("us", "UTC")},
        )
        rows = rows.with_row_index("id", offset=1).with_columns(pl.col("id").cast(pl.Int64))
        with duckdb.connect(str(db_path)) as con:
            con.execute(PAYMENTS_DDL)
            con.register("rows", rows.to_arrow())
            # One bulk insert: a year of rows in seconds (executemany takes minutes).
            con.execute(f"insert into payments select id, {', '.join(columns)} from rows")
            con.execute(BANK_DDL)
            con.executemany(
                "insert into bank_lines values (?, ?, ?, ?, ?)",
                [
                    (b["id"], b["booked_on"], b["amount"], b["currency"], b["memo"])
                    for b in self.payouts.bank_lines
                ],
            )
        return charges_path, db_path


class _Builder:
    def __init__(self, seed: int, tz: str):
        self.rng = random.Random(seed)
        self.tz = ZoneInfo(tz)
        self.ds: DemoDataset

    def ident(self, prefix: str) -> str:
        return prefix + "_3" + "".join(self.rng.choices(string.ascii_letters + string.digits, k=21))

    def moment(self, day: date, lo: float = 0.0, hi: float = 86_399.0) -> datetime:
        local = datetime.combine(day, time(0), tzinfo=self.tz) + timedelta(
            seconds=int(self.rng.uniform(lo, hi))
        )
        return local.astimezone(UTC)

    def sale(
        self,
        when: datetime,
        *,
        currency: str | None = None,
        status: str = "succeeded",
        refunded: str = "none",
        captured: int | None = None,
        intent_row: bool | None = None,
    ) -> tuple[dict, dict]:
        """A charge and the row the application writes for it (keyed by its PaymentIntent id for
        about half the rows, unless `intent_row` says); `captured`: a partial capture of that
        much."""
        cur = currency or self.rng.choices(["USD", "EUR", "JPY"], weights=[80, 15, 5])[0]
        amount = self.rng.choice(PRICES[cur]) * self.rng.choice([1, 1, 1, 2, 3])
        taken = amount if captured is None else captured
        refund = {"none": 0, "full": taken, "partial": taken // 2}[refunded]
        cid, intent = self.ident("ch"), self.ident("pi")
        customer = self.ident("cus")
        charge = make_charge(
            cid,
            amount,
            cur.lower(),
            created=int(when.timestamp()),
            status=status,
            amount_refunded=refund,
            customer=customer,
            payment_intent=intent,
            amount_captured=captured,
            description=f"Order {self.rng.randint(10_000, 99_999)}",
        )
        by_intent = self.rng.random() < 0.5 if intent_row is None else intent_row
        row = dict(
            stripe_charge_id=intent if by_intent else cid,
            customer_email=f"{customer[-6:].lower()}@example.com",
            amount=taken,
            currency=cur,
            status="succeeded" if status == "succeeded" else "failed",
            amount_refunded=refund,
            created_at=when + timedelta(seconds=self.rng.randint(1, 4)),
        )
        return charge, row

    def declined_attempts(self, charge: dict, n: int) -> list[dict]:
        """Cards declined on the same PaymentIntent before its charge succeeded: not payments."""
        return [
            make_charge(
                self.ident("ch"),
                charge["amount"],
                charge["currency"],
                created=charge["created"] - 60 * (n - k),
                status="failed",
                customer=charge["customer"],
                payment_intent=charge["payment_intent"],
            )
            for k in range(n)
        ]

    def dispute(self, charge: dict, status: str, reason: str = "fraudulent") -> dict:
        charge["disputed"] = True
        return make_dispute(
            self.ident("dp"),
            charge["id"],
            charge["amount_captured"],
            charge["currency"],
            status=status,
            reason=reason,
            created=charge["created"] + 3_600,
            payment_intent=charge["payment_intent"],
        )


def build_demo_dataset(
    days: list[date], tz: str = "UTC", *, seed: int = 7, per_day: int = 180
) -> DemoDataset:
    b = _Builder(seed, tz)
    ds = DemoDataset(days=list(days), timezone=tz)
    for index, day in enumerate(days):
        profile = PROFILES[index % len(PROFILES)]
        ds.profiles[day] = profile
        seeded: dict[str, list[str]] = {}
        pairs = [b.sale(b.moment(day, 0, 86_340)) for _ in range(per_day)]
        pairs += [b.sale(b.moment(day, 0, 86_340), status="failed") for _ in range(per_day // 20)]
        pairs += [b.sale(b.moment(day, 0, 86_340), refunded=kind) for kind in ("full", "partial")]
        # A hotel-style partial capture, recorded as what was taken: no discrepancy.
        hotel, row = b.sale(b.moment(day, 0, 86_340), currency="USD", intent_row=True)
        hotel.update(amount_captured=hotel["amount"] * 3 // 4)
        row["amount"] = hotel["amount_captured"]
        pairs.append((hotel, row))
        # An authorisation never captured, and a row that (rightly) is not marked paid for it.
        auth, row = b.sale(b.moment(day, 0, 86_340), currency="USD", intent_row=True)
        auth.update(captured=False, amount_captured=0, balance_transaction=None)
        pairs.append((auth, dict(row, status="requires_capture")))
        # Declined cards before a success, on one PaymentIntent.
        retried = pairs[0][0]
        attempts = b.declined_attempts(retried, 2)
        # A dispute won earlier in the week: listed, no money at stake.
        won = next(
            (c for c, _ in pairs[1:per_day] if c["currency"] != "usd"), pairs[1][0]
        )  # USD ones may be taken below
        ds.disputes.append(b.dispute(won, "won", "product_not_received"))

        # Every day: a charge two seconds before midnight, written down just after it.
        late, row = b.sale(
            datetime.combine(day, time(23, 59, 58), tzinfo=b.tz).astimezone(UTC),
            currency="USD",
        )
        row["created_at"] = datetime.fromtimestamp(late["created"] + 5, UTC)
        pairs.append((late, row))
        seeded["timing_differences"] = [late["id"]]

        charges = [c for c, _ in pairs] + attempts
        rows = [r for _, r in pairs if r["status"] in ("succeeded", "requires_capture")]
        # Discrepancies come from ordinary USD sales, sized so that a warning day lands between the
        # tolerance and the critical level and a critical day above it.
        plain = [i for i, (c, r) in enumerate(pairs[:per_day]) if r["currency"] == "USD"]
        b.rng.shuffle(plain)
        usd_total = sum(pairs[i][0]["amount"] for i in plain)

        # This day's `plain` and `pairs`, bound now (the loop moves on to the next day's).
        def take(n: int, plain: list[int] = plain) -> list[int]:
            return [plain.pop() for _ in range(n)]

        def smallest(plain: list[int] = plain, pairs: list = pairs) -> int:
            i = min(plain, key=lambda k: (pairs[k][0]["amount"], k))
            plain.remove(i)
            return i

        if profile != "clean":
            budget = usd_total * (0.022 if profile == "warning" else 0.09) - 4900 - 500
            lost: list[int] = []
            for i in list(plain):
                if (
                    len(lost) >= 2
                    and sum(pairs[j][0]["amount"] for j in lost) + pairs[i][0]["amount"] > budget
                ):
                    continue
                lost.append(i)
                plain.remove(i)
                if sum(pairs[j][0]["amount"] for j in lost) >= budget * 0.8:
                    break
            seeded["missing_in_database"] = [
                pairs[i][0]["id"] for i in lost
            ]  # webhooks that never arrived
            lost_rows = {id(pairs[i][1]) for i in lost}
            rows = [r for r in rows if id(r) not in lost_rows]

            [i] = take(
                1
            )  # a payment typed in by hand with a made-up charge id, never charged through Stripe
            manual = dict(
                pairs[i][1],
                stripe_charge_id="ch_manual" + pairs[i][0]["id"][-8:],
                amount=4900,
                currency="USD",
            )
            rows.append(manual)
            seeded["missing_in_stripe"] = [str(manual["stripe_charge_id"])]

            [i] = take(1)  # the application charged a different amount than it recorded
            pairs[i][1]["amount"] -= 500
            seeded["amount_mismatches"] = [pairs[i][0]["id"]]

            i = smallest()  # a retried webhook stored twice
            rows.append(
                dict(pairs[i][1], created_at=pairs[i][1]["created_at"] + timedelta(seconds=30))
            )
            seeded["duplicates_in_database"] = [pairs[i][0]["id"]]

            [i] = take(1)  # an open chargeback: money at risk, not against the tolerance yet
            ds.disputes.append(b.dispute(pairs[i][0], "needs_response"))
            seeded["disputes"] = [won["id"], pairs[i][0]["id"]]

            # The checkout page stored its session id instead of the payment's: a row nobody can
            # match.
            rows.append(
                dict(
                    pairs[0][1],
                    stripe_charge_id=b.ident("cs"),
                    amount=1900,
                    currency="USD",
                    created_at=pairs[0][1]["created_at"] + timedelta(seconds=7),
                )
            )
            seeded["invalid_rows"] = [rows[-1]["stripe_charge_id"]]

        if profile == "critical":
            failed = next(
                c for c in charges if c["status"] == "failed"
            )  # a declined card marked paid
            rows.append(
                dict(
                    stripe_charge_id=failed["id"],
                    customer_email="declined@example.com",
                    amount=failed["amount"],
                    currency=failed["currency"].upper(),
                    status="paid",
                    amount_refunded=0,
                    created_at=datetime.fromtimestamp(failed["created"] + 2, UTC),
                )
            )
            seeded["status_mismatches"] = [failed["id"]]

            [i] = take(1)  # refunded in the Stripe dashboard, never told to the application
            pairs[i][0].update(amount_refunded=pairs[i][0]["amount"], refunded=True)
            seeded["refund_mismatches"] = [pairs[i][0]["id"]]

            [i] = take(1)  # a chargeback lost: Stripe took the money back
            ds.disputes.append(b.dispute(pairs[i][0], "lost"))
            seeded["disputes"].append(pairs[i][0]["id"])

            # An authorisation the application marked paid before it was captured.
            next(r for r in rows if r["stripe_charge_id"] == auth["payment_intent"])["status"] = (
                "paid"
            )
            seeded["status_mismatches"].append(auth["id"])

        ds.charges += charges
        ds.payments += rows
        ds.seeded[day] = seeded
    ds.payouts = build_demo_payouts(ds.days, tz, ds.charges, ds.disputes, seed=seed)
    return ds
