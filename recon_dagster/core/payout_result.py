"""`PayoutResult`: every payout of a window, what it is made of, and where it landed in the bank.

Amounts are integer minor units of the payout's currency; `to_json_dict` is the one edge where they
become major units (exact decimal strings), `to_record` the lossless minor-unit form for storage.
No Polars here: the core builds these from its frames, and callers only read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any, Literal

from recon_dagster.money import to_major

Status = Literal["reconciled", "problems", "error"]
Severity = Literal["pass", "warn", "error"]

# A payout's problem codes, in the order a payout lists them.
PROBLEMS: tuple[str, ...] = (
    "failed",
    "itemization_mismatch",
    "charges_missing_in_database",
    "charge_amount_mismatch",
    "missing_in_bank",
    "awaiting_bank",
)
# Reported, but no problem for the status: the bank may still show the money.
REPORT_ONLY: tuple[str, ...] = ("awaiting_bank",)
# Money that did not arrive, or not as Stripe says: the run fails.
ERRORS: tuple[str, ...] = ("failed", "itemization_mismatch", "missing_in_bank")
# Bookkeeping that does not match, with the money where it should be: a warning.
WARNINGS: tuple[str, ...] = (
    "charges_missing_in_database",
    "charge_amount_mismatch",
    "deposits_without_payout",
)
# The keys of `counts()` besides `payouts` and `deposits_without_payout`, in their order.
COUNTED: tuple[str, ...] = (
    "itemization_mismatch",
    "charges_missing_in_database",
    "charge_amount_mismatch",
    "missing_in_bank",
    "awaiting_bank",
    "failed",
)
MANUAL_NOTE = "manual payout: matched to the bank only"
# What a payout's balance transactions add up to, by type: a payout line's itemization.
ITEMIZED = ("charges", "refunds", "disputes", "fees", "adjustments")
# The money fields of a payout line, converted to major units in JSON.
_LINE_MONEY = ("amount", "itemized_net", "difference", *ITEMIZED)


@dataclass(frozen=True)
class PayoutLine:
    """One reported payout.

    For an automatic payout, `itemized_net` is the net of the balance transactions it paid out (its
    own transaction left out), `difference` is `amount - itemized_net`, and the five components add
    up to `itemized_net`: charges + refunds + disputes + fees + adjustments. `fees` is the fee-
    category amounts minus every transaction's `fee` (so normally <= 0). A manual payout has no
    itemization: those fields are None.
    """

    id: str
    amount: int
    currency: str
    arrival_date: date
    status: str
    automatic: bool
    failure_code: str | None = None
    trace_id: str | None = None
    itemized_net: int | None = None
    difference: int | None = None
    charges: int | None = None
    refunds: int | None = None
    disputes: int | None = None
    fees: int | None = None
    adjustments: int | None = None
    transaction_count: int = 0
    charges_missing_in_database: tuple[str, ...] = ()
    charges_amount_mismatch: tuple[str, ...] = ()
    bank_deposit_id: str | None = None
    problems: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Deposit:
    """A bank deposit (amount > 0, minor units)."""

    id: str
    amount: int
    currency: str
    date: date
    reference: str | None = None


@dataclass(frozen=True)
class PayoutResult:
    """Payouts arriving in [first, last], sorted by arrival date then id, and the window's deposits
    that no payout claimed. `bank_checked` is False when no bank statement is configured: then no
    payout is matched and none is missing in the bank."""

    first: date
    last: date
    as_of: date
    match_days: int
    bank_checked: bool
    payouts: tuple[PayoutLine, ...] = ()
    deposits_without_payout: tuple[Deposit, ...] = ()
    error: str | None = None
    # Where the payouts were read: `api`, or `mirror:<layout>` (a Stripe mirror in PostgreSQL), and,
    # for a mirror that has not caught up to the window's end, what to say (a WARN at least).
    stripe_source: str = "api"
    source_note: str | None = None
    # Payouts on which the mirror and the Stripe API disagree (RECON_MIRROR_SPOT_CHECK): an ERROR.
    source_mismatches: tuple[str, ...] = ()

    @classmethod
    def failed(
        cls, first: date, last: date, as_of: date, error: str, *, match_days: int = 3
    ) -> PayoutResult:
        """A run that could not happen (status `error`); the message says why."""
        return cls(
            first=first,
            last=last,
            as_of=as_of,
            match_days=match_days,
            bank_checked=False,
            error=error,
        )

    @property
    def status(self) -> Status:
        if self.error is not None:
            return "error"
        counts = self.counts()
        if (
            self.source_mismatches
            or counts["deposits_without_payout"]
            or any(counts[p] for p in PROBLEMS if p not in REPORT_ONLY)
        ):
            return "problems"
        return "reconciled"

    def severity(self) -> Severity:
        """`error` when money is missing or wrong (or the run failed), `warn` for bookkeeping."""
        counts = self.counts()
        if self.error is not None or self.source_mismatches or any(counts[p] for p in ERRORS):
            return "error"
        return "warn" if self.source_note or any(counts[p] for p in WARNINGS) else "pass"

    def counts(self) -> dict[str, int]:
        """Payouts per problem (deposits for `deposits_without_payout`), and `payouts` in all."""
        out = {"payouts": len(self.payouts)}
        for problem in COUNTED:
            out[problem] = sum(problem in line.problems for line in self.payouts)
        return out | {"deposits_without_payout": len(self.deposits_without_payout)}

    # -- the edges ---------------------------------------------------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        """The CLI's and the report store's shape: money as exact decimal strings in major units."""

        def major(minor: int | None, currency: str) -> str | None:
            return None if minor is None else str(to_major(minor, currency))

        def line(p: PayoutLine) -> dict[str, Any]:
            out = {f.name: getattr(p, f.name) for f in fields(p)}
            out |= {name: major(out[name], p.currency) for name in _LINE_MONEY}
            out |= {
                "arrival_date": p.arrival_date.isoformat(),
                "problems": list(p.problems),
                "charges_missing_in_database": list(p.charges_missing_in_database),
                "charges_amount_mismatch": list(p.charges_amount_mismatch),
            }
            return out

        return {
            "status": self.status,
            "error": self.error,
            "bank_checked": self.bank_checked,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "payouts": [line(p) for p in self.payouts],
            "deposits_without_payout": [
                {
                    "id": d.id,
                    "amount": major(d.amount, d.currency),
                    "currency": d.currency,
                    "date": d.date.isoformat(),
                    "reference": d.reference,
                }
                for d in self.deposits_without_payout
            ],
            "counts": self.counts(),
            "stripe_source": self.stripe_source,
            "source_note": self.source_note,
            "source_mismatches": list(self.source_mismatches),
        }

    def to_record(self) -> dict[str, Any]:
        """Lossless plain-Python form for storage: minor units, dates as ISO text, lists for tuples;
        it survives `json.dumps`, and `from_record` rebuilds an equal result."""
        record = asdict(self)
        for key in ("first", "last", "as_of"):
            record[key] = record[key].isoformat()
        for p in record["payouts"]:
            p["arrival_date"] = p["arrival_date"].isoformat()
            for key in ("charges_missing_in_database", "charges_amount_mismatch", "problems"):
                p[key] = list(p[key])
        for d in record["deposits_without_payout"]:
            d["date"] = d["date"].isoformat()
        record["payouts"] = list(record["payouts"])
        record["source_mismatches"] = list(record["source_mismatches"])
        record["deposits_without_payout"] = list(record["deposits_without_payout"])
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PayoutResult:
        """The inverse of `to_record` (dates may be ISO text or `date`s; a `version` key is
        ignored)."""

        def day(value: str | date) -> date:
            return value if isinstance(value, date) else date.fromisoformat(value)

        lists = ("charges_missing_in_database", "charges_amount_mismatch", "problems")
        lines = tuple(
            PayoutLine(
                **{**p, "arrival_date": day(p["arrival_date"]), **{k: tuple(p[k]) for k in lists}}
            )
            for p in record["payouts"]
        )
        deposits = tuple(
            Deposit(**{**d, "date": day(d["date"])}) for d in record["deposits_without_payout"]
        )
        return cls(
            first=day(record["first"]),
            last=day(record["last"]),
            as_of=day(record["as_of"]),
            match_days=record["match_days"],
            bank_checked=record["bank_checked"],
            payouts=lines,
            deposits_without_payout=deposits,
            error=record.get("error"),
            stripe_source=record.get("stripe_source", "api"),
            source_note=record.get("source_note"),
            source_mismatches=tuple(record.get("source_mismatches", ())),
        )
