"""How bad a result is: pass, warn (above the tolerance) or critical (above the critical level)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from recon_dagster.core.result import ReconciliationResult

Grade = Literal["pass", "warn", "critical"]


def _exceeds(part: int, base: int, percent: Decimal) -> bool:
    """Exact `part / base * 100 > percent`; any difference on a zero base exceeds."""
    if base == 0:
        return part > 0
    return Decimal(part) * 100 > percent * base


def exceeds(result: ReconciliationResult, percent: Decimal) -> bool:
    """Does any currency's gross discrepancy exceed `percent` of its Stripe total?"""
    return any(_exceeds(t.gross_discrepancy, t.stripe_total, percent) for t in result.totals)


def grade(result: ReconciliationResult, tolerance: Decimal, critical: Decimal) -> Grade:
    # A Stripe mirror that disagrees with the API makes every figure of the day doubtful.
    if exceeds(result, critical) or result.source_mismatches:
        return "critical"
    # Rows left out of the reconciliation are unchecked money, and a mirror that has not caught up
    # may lack charges: never a clean pass.
    if exceeds(result, tolerance) or result.source_note or result.counts()["invalid_rows"]:
        return "warn"
    return "pass"
