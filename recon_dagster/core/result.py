"""`ReconciliationResult`: the seed's result, per currency, with every discrepancy class.

Amounts are integer minor units of the item's currency. `to_json_dict` is the one edge where
they become major units (as exact decimal strings). The seed's fields keep their meaning; the
headline figures (`stripe_total`, `discrepancy_percentage`, ...) are those of the headline
currency, the currency with the worst gross percentage (see README, "Money").
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from operator import attrgetter
from typing import Any, Literal

from recon_dagster.money import to_major

Status = Literal["success", "discrepancy_found", "error"]
# What the payments table's id column holds: each id by its prefix, charge ids, or PaymentIntent
# ids.
MatchOn = Literal["auto", "charge", "payment_intent"]

# The discrepancy classes, in the order reports and alerts list them.
CLASSES: tuple[str, ...] = (
    "missing_in_database",
    "missing_in_stripe",
    "amount_mismatches",
    "status_mismatches",
    "refund_mismatches",
    "duplicates_in_database",
    "currency_mismatches",
    "timing_differences",
    "disputes",
    "invalid_rows",
)
# Reported, but never money against the tolerance by themselves (a lost dispute's `difference` is).
REPORT_ONLY: tuple[str, ...] = ("timing_differences", "invalid_rows")
# Dispute statuses that may still take the money back (Stripe's open states).
OPEN_DISPUTES: tuple[str, ...] = (
    "needs_response",
    "under_review",
    "warning_needs_response",
    "warning_under_review",
)


@dataclass(frozen=True)
class Finding:
    """One payment in one discrepancy class.

    `difference` is the money at stake, signed as Stripe minus database, in `currency`; it is
    what the gross discrepancy adds up (0 for timing differences, which are reported only).
    """

    kind: str
    payment_id: str
    currency: str
    stripe_amount: int | None = None
    database_amount: int | None = None
    difference: int = 0
    stripe_status: str | None = None
    database_status: str | None = None
    stripe_currency: str | None = None
    database_currency: str | None = None
    stripe_refunded: int | None = None
    database_refunded: int | None = None
    database_count: int | None = None
    stripe_created: datetime | None = None
    database_created: datetime | None = None
    detail: str = ""
    database_id: str | None = (
        None  # the table's id when it is not `payment_id` (a PaymentIntent id)
    )
    dispute_id: str | None = None
    dispute_status: str | None = None
    source: str | None = None  # invalid_rows: "stripe" or "database"
    column: str | None = None  # invalid_rows: the field or column at fault


@dataclass(frozen=True)
class CurrencyTotals:
    """One currency's side-by-side totals (minor units) and percentages of the Stripe total."""

    currency: str
    stripe_total: int
    database_total: int
    stripe_count: int
    database_count: int
    discrepancy: int  # |stripe_total - database_total|, the seed's figure
    gross_discrepancy: int  # sum of |difference| over findings, so offsetting errors still show
    discrepancy_percentage: float
    gross_discrepancy_percentage: float
    disputes_lost: int = (
        0  # lost disputes: money Stripe took back (counted in the gross discrepancy)
    )
    disputes_open: int = 0  # open disputes: money at risk, not counted against the tolerance


@dataclass(frozen=True)
class ReconciliationResult:
    date: date  # first day, in the reconciliation time zone
    end_date: date  # last day, inclusive
    timezone: str
    status: Status
    currency: str | None  # headline currency
    stripe_total: int
    database_total: int
    discrepancy: int
    discrepancy_percentage: float
    gross_discrepancy: int
    gross_discrepancy_percentage: float
    tolerance_percentage: float
    include_refunds: bool
    totals: tuple[CurrencyTotals, ...] = ()
    findings: tuple[Finding, ...] = ()
    recommendations: tuple[str, ...] = ()
    stripe_count: int = 0
    database_count: int = 0
    error: str | None = None
    # Where the Stripe side came from ("api", or "mirror:<layout>") and what the source itself says
    # about the day: a mirror that has not caught up (WARN), charges on which it disagrees with the
    # API (ERROR). See sources/mirror_check.py.
    stripe_source: str = "api"
    source_note: str | None = None
    source_mismatches: tuple[str, ...] = ()

    # -- the seed's list-shaped fields -------------------------------------------------------
    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def missing_in_database(self) -> list[str]:
        return [f.payment_id for f in self.of("missing_in_database")]

    @property
    def missing_in_stripe(self) -> list[str]:
        return [f.payment_id for f in self.of("missing_in_stripe")]

    @property
    def amount_mismatches(self) -> list[Finding]:
        return self.of("amount_mismatches")

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CLASSES, 0)
        for f in self.findings:
            counts[f.kind] += 1
        return counts

    def with_recommendations(
        self, recommendations: list[str] | tuple[str, ...]
    ) -> ReconciliationResult:
        return replace(self, recommendations=tuple(recommendations))

    @classmethod
    def failed(
        cls,
        start: date,
        end: date,
        timezone: str,
        error: str,
        *,
        tolerance: float,
        include_refunds: bool,
    ) -> ReconciliationResult:
        """The seed's status `error`: the reconciliation could not run; the message says why."""
        return cls(
            date=start,
            end_date=end,
            timezone=timezone,
            status="error",
            currency=None,
            stripe_total=0,
            database_total=0,
            discrepancy=0,
            discrepancy_percentage=0.0,
            gross_discrepancy=0,
            gross_discrepancy_percentage=0.0,
            tolerance_percentage=tolerance,
            include_refunds=include_refunds,
            error=error,
            recommendations=(
                "Fix the error above, then re-run the day (materialize the partition "
                "or `recon-dagster reconcile`).",
            ),
        )

    # -- the edge: JSON with major units --------------------------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        """The CLI's and the report store's shape: snake_case, money as exact decimal strings."""
        cur = self.currency

        def major(minor: int | None, currency: str | None) -> str | None:
            if minor is None or currency is None:
                return None
            return str(to_major(minor, currency))

        def item(f: Finding) -> dict[str, Any]:
            if f.kind == "invalid_rows":
                created = f.stripe_created or f.database_created
                return {
                    "id": f.payment_id or None,
                    "source": f.source,
                    "created": created.isoformat() if created else None,
                    "column": f.column,
                    "reason": f.detail,
                }
            out: dict[str, Any] = {"payment_id": f.payment_id, "currency": f.currency}
            if f.kind == "disputes":
                out |= {
                    "id": f.payment_id,
                    "amount": major(f.stripe_amount, f.currency),
                    "dispute_id": f.dispute_id,
                    "dispute_status": f.dispute_status,
                }
            for name in (
                "stripe_amount",
                "database_amount",
                "difference",
                "stripe_refunded",
                "database_refunded",
            ):
                value = getattr(f, name)
                if value is not None and not (
                    name == "difference" and f.kind == "currency_mismatches"
                ):
                    out[name] = major(value, f.currency)
            for name in (
                "stripe_status",
                "database_status",
                "stripe_currency",
                "database_currency",
                "database_count",
                "database_id",
            ):
                value = getattr(f, name)
                if value is not None:
                    out[name] = value
            for name in ("stripe_created", "database_created"):
                value = getattr(f, name)
                if value is not None:
                    out[name] = value.isoformat()
            if f.detail:
                out["detail"] = f.detail
            return out

        by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in CLASSES}
        for f in self.findings:  # one pass, not one per class: a large day has 200,000
            if f.kind in by_kind:
                by_kind[f.kind].append(item(f))
        return {
            "date": self.date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "timezone": self.timezone,
            "status": self.status,
            "currency": cur,
            "stripe_total": major(self.stripe_total, cur) if cur else "0",
            "database_total": major(self.database_total, cur) if cur else "0",
            "discrepancy": major(self.discrepancy, cur) if cur else "0",
            "discrepancy_percentage": self.discrepancy_percentage,
            "gross_discrepancy": major(self.gross_discrepancy, cur) if cur else "0",
            "gross_discrepancy_percentage": self.gross_discrepancy_percentage,
            "tolerance_percentage": self.tolerance_percentage,
            "include_refunds": self.include_refunds,
            "missing_in_database": self.missing_in_database,
            "missing_in_stripe": self.missing_in_stripe,
            "amount_mismatches": [
                {
                    k: v
                    for k, v in details.items()
                    if k
                    in ("payment_id", "stripe_amount", "database_amount", "difference", "currency")
                }
                for details in by_kind["amount_mismatches"]
            ],
            "missing_in_database_details": by_kind["missing_in_database"],
            "missing_in_stripe_details": by_kind["missing_in_stripe"],
            **{kind: by_kind[kind] for kind in CLASSES[3:]},
            "counts": self.counts(),
            "totals_by_currency": [
                {
                    "currency": t.currency,
                    "stripe_total": major(t.stripe_total, t.currency),
                    "database_total": major(t.database_total, t.currency),
                    "discrepancy": major(t.discrepancy, t.currency),
                    "discrepancy_percentage": t.discrepancy_percentage,
                    "gross_discrepancy": major(t.gross_discrepancy, t.currency),
                    "gross_discrepancy_percentage": t.gross_discrepancy_percentage,
                    "stripe_count": t.stripe_count,
                    "database_count": t.database_count,
                    "disputes_lost": major(t.disputes_lost, t.currency),
                    "disputes_open": major(t.disputes_open, t.currency),
                }
                for t in self.totals
            ],
            "stripe_count": self.stripe_count,
            "database_count": self.database_count,
            "recommendations": list(self.recommendations),
            "error": self.error,
            "stripe_source": self.stripe_source,
            "source_note": self.source_note,
            "source_mismatches": list(self.source_mismatches),
        }

    def to_record(self) -> dict[str, Any]:
        """Lossless plain-Python form (minor units) for storage and round trips: `asdict`'s
        shape (totals and findings as tuples of dicts), without its deep copy of every value of
        every finding, which was most of a large day's report save (every value is immutable)."""
        return {
            **dict(zip(_RESULT_FIELDS, _result_values(self), strict=True)),
            "totals": tuple(_plain(t, _TOTALS_FIELDS, _totals_values) for t in self.totals),
            "findings": tuple(_plain(f, _FINDING_FIELDS, _finding_values) for f in self.findings),
        }


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _plain(obj: Any, names: tuple[str, ...], values: attrgetter) -> dict[str, Any]:
    return dict(zip(names, values(obj), strict=True))


_RESULT_FIELDS = _names(ReconciliationResult)
_TOTALS_FIELDS = _names(CurrencyTotals)
_FINDING_FIELDS = _names(Finding)
_result_values = attrgetter(*_RESULT_FIELDS)
_totals_values = attrgetter(*_TOTALS_FIELDS)
_finding_values = attrgetter(*_FINDING_FIELDS)


@dataclass(frozen=True)
class ReconcileParams:
    """What the core needs besides the two frames."""

    start: date
    end: date
    timezone: str = "UTC"
    tolerance_percentage: float = 1.0
    include_refunds: bool = True
    paid_statuses: tuple[str, ...] = ("succeeded", "paid", "completed")
    refunds_tracked: bool = False  # the payments table has a refunded column
    match_on: MatchOn = "auto"  # what the table's ids are (RECON_MATCH_ON)
    extra: dict[str, Any] = field(default_factory=dict)
