"""`ReconciliationResult`: the seed's result, per currency, with every discrepancy class.

Amounts are integer minor units of the item's currency. `to_json_dict` is the one edge where
they become major units (as exact decimal strings). The seed's fields keep their meaning; the
headline figures (`stripe_total`, `discrepancy_percentage`, ...) are those of the headline
currency, the currency with the worst gross percentage (see README, "Money").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import date
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal

from recon_dagster.core.finding import Finding
from recon_dagster.money import to_major

if TYPE_CHECKING:
    import polars as pl

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


class _Findings:
    """`ReconciliationResult.findings`: a tuple of `Finding`, which may be set as the Polars frame
    the core built (`finding_frame.FINDING_SCHEMA`). The objects are then made on first read: the
    store, metadata and recommendations read the frame, and 20,000 objects were ~50 ms of a
    million-charge day's ~400 ms core (issue 24).

    Polars is imported where a frame is read, not here: the CLI starts without it.
    """

    def __get__(
        self, obj: ReconciliationResult | None, owner: type | None = None
    ) -> tuple[Finding, ...]:
        if obj is None:
            return ()  # the field's default, as dataclasses asks a descriptor for it
        held = obj.__dict__
        if held["_findings"] is None:
            from recon_dagster.core.finding_frame import to_objects

            held["_findings"] = tuple(to_objects(held["_findings_frame"]))
        return held["_findings"]

    def __set__(self, obj: ReconciliationResult, value: Iterable[Finding] | pl.DataFrame) -> None:
        if not isinstance(value, tuple | list):
            import polars as pl  # loaded already wherever a frame is passed

            if isinstance(value, pl.DataFrame):
                obj.__dict__.update(_findings=None, _findings_frame=value)
                return
        obj.__dict__.update(_findings=tuple(value), _findings_frame=None)


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
    findings: _Findings = _Findings()
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

    # -- the findings, as objects or as a frame ---------------------------------------------------
    def _held(self) -> tuple[Finding, ...] | pl.DataFrame:
        """The findings as they are held: the objects once made, else the core's frame."""
        made = self.__dict__["_findings"]
        return made if made is not None else self.__dict__["_findings_frame"]

    @property
    def findings_frame(self) -> pl.DataFrame:
        """The findings as a Polars frame in `finding_frame.FINDING_SCHEMA`, in report order."""
        frame = self.__dict__["_findings_frame"]
        if frame is None:
            from recon_dagster.core.finding_frame import to_frame

            frame = to_frame(self.findings)
        return frame

    def with_changes(self, **changes: Any) -> ReconciliationResult:
        """`dataclasses.replace`, handing the findings over as they are held (`replace` would read
        `findings`, making every object of a frame)."""
        return replace(self, **{"findings": self._held(), **changes})

    def finding_records(self) -> list[dict[str, Any]]:
        """One plain dict per finding (`Finding`'s fields, minor units): what `to_record` stores
        and `to_json_dict` reads. Polars' `to_dicts` gives the same dicts as the objects do."""
        held = self._held()
        if isinstance(held, tuple):
            return [_plain(f, _FINDING_FIELDS, _finding_values) for f in held]
        return held.to_dicts()

    # -- the seed's list-shaped fields -------------------------------------------------------
    def of(self, kind: str) -> list[Finding]:
        held = self._held()
        if isinstance(held, tuple):
            return [f for f in held if f.kind == kind]
        from recon_dagster.core.finding_frame import to_objects

        return to_objects(held.filter(held.get_column("kind") == kind))

    def _ids_of(self, kind: str) -> list[str]:
        held = self._held()
        if isinstance(held, tuple):
            return [f.payment_id for f in held if f.kind == kind]
        return held.filter(held.get_column("kind") == kind).get_column("payment_id").to_list()

    @property
    def missing_in_database(self) -> list[str]:
        return self._ids_of("missing_in_database")

    @property
    def missing_in_stripe(self) -> list[str]:
        return self._ids_of("missing_in_stripe")

    @property
    def amount_mismatches(self) -> list[Finding]:
        return self.of("amount_mismatches")

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CLASSES, 0)
        held = self._held()
        if isinstance(held, tuple):
            for f in held:
                counts[f.kind] += 1
        else:
            for kind, n in held.get_column("kind").value_counts().iter_rows():
                counts[kind] += n
        return counts

    def with_recommendations(
        self, recommendations: list[str] | tuple[str, ...]
    ) -> ReconciliationResult:
        return self.with_changes(recommendations=tuple(recommendations))

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
    def to_json_dict(self, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The CLI's and the report store's shape: snake_case, money as exact decimal strings.
        `records`: `finding_records()`, when the caller has them already (the store does)."""
        cur = self.currency

        def major(minor: int | None, currency: str | None) -> str | None:
            if minor is None or currency is None:
                return None
            return str(to_major(minor, currency))

        def item(f: dict[str, Any]) -> dict[str, Any]:
            kind, currency = f["kind"], f["currency"]
            if kind == "invalid_rows":
                created = f["stripe_created"] or f["database_created"]
                return {
                    "id": f["payment_id"] or None,
                    "source": f["source"],
                    "created": created.isoformat() if created else None,
                    "column": f["column"],
                    "reason": f["detail"],
                }
            out: dict[str, Any] = {"payment_id": f["payment_id"], "currency": currency}
            if kind == "disputes":
                out |= {
                    "id": f["payment_id"],
                    "amount": major(f["stripe_amount"], currency),
                    "dispute_id": f["dispute_id"],
                    "dispute_status": f["dispute_status"],
                }
            for name in (
                "stripe_amount",
                "database_amount",
                "difference",
                "stripe_refunded",
                "database_refunded",
            ):
                value = f[name]
                if value is not None and not (
                    name == "difference" and kind == "currency_mismatches"
                ):
                    out[name] = major(value, currency)
            for name in (
                "stripe_status",
                "database_status",
                "stripe_currency",
                "database_currency",
                "database_count",
                "database_id",
            ):
                value = f[name]
                if value is not None:
                    out[name] = value
            for name in ("stripe_created", "database_created"):
                value = f[name]
                if value is not None:
                    out[name] = value.isoformat()
            if f["detail"]:
                out["detail"] = f["detail"]
            return out

        by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in CLASSES}
        for f in self.finding_records() if records is None else records:
            # One pass, not one per class: a large day has 200,000.
            if f["kind"] in by_kind:
                by_kind[f["kind"]].append(item(f))
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
            "missing_in_database": [i["payment_id"] for i in by_kind["missing_in_database"]],
            "missing_in_stripe": [i["payment_id"] for i in by_kind["missing_in_stripe"]],
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
            "counts": {kind: len(items) for kind, items in by_kind.items()},
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

    def to_record(self, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Lossless plain-Python form (minor units) for storage and round trips: `asdict`'s
        shape (totals and findings as tuples of dicts), without its deep copy of every value of
        every finding, which was most of a large day's report save (every value is immutable).
        `records`: `finding_records()`, when the caller has them already."""
        values = dict(zip(_SCALAR_FIELDS, _scalar_values(self), strict=True))
        values["totals"] = tuple(_plain(t, _TOTALS_FIELDS, _totals_values) for t in self.totals)
        values["findings"] = tuple(self.finding_records() if records is None else records)
        return {name: values[name] for name in _RESULT_FIELDS}  # in the fields' order, as stored


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _plain(obj: Any, names: tuple[str, ...], values: attrgetter) -> dict[str, Any]:
    return dict(zip(names, values(obj), strict=True))


_RESULT_FIELDS = _names(ReconciliationResult)
# The record's totals and findings are made apart (the findings may be a frame).
_SCALAR_FIELDS = tuple(n for n in _RESULT_FIELDS if n not in ("totals", "findings"))
_TOTALS_FIELDS = _names(CurrencyTotals)
_FINDING_FIELDS = _names(Finding)
_scalar_values = attrgetter(*_SCALAR_FIELDS)
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
