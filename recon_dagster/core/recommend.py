"""Findings -> ranked, specific recommendations, each pointing at an action the product offers.

Ranked by money at stake, as a share of the currency's Stripe total (amounts in different
currencies cannot be added). The first three are what alerts show.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from recon_dagster.core.result import OPEN_DISPUTES, Finding, ReconciliationResult
from recon_dagster.money import format_major

_MAX_IDS = 3


def _ids(findings: list[Finding]) -> str:
    shown = ", ".join(f.payment_id for f in findings[:_MAX_IDS])
    more = len(findings) - _MAX_IDS
    return shown + (f" and {more} more" if more > 0 else "")


def _money(findings: list[Finding], *, field: str = "difference") -> str:
    per_currency: dict[str, int] = defaultdict(int)
    for f in findings:
        per_currency[f.currency] += abs(getattr(f, field) or 0)
    return " + ".join(format_major(v, c) for c, v in sorted(per_currency.items()))


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _verb(n: int, plural_form: str) -> str:
    """'differ' -> 'differs' for one item."""
    return plural_form + "s" if n == 1 else plural_form


def _span(result: ReconciliationResult) -> tuple[str, str]:
    start, end = result.date.isoformat(), result.end_date.isoformat()
    return start, (f"--start {start}" if start == end else f"--start {start} --end {end}")


def _text(kind: str, items: list[Finding], result: ReconciliationResult) -> str:
    n, ids = len(items), _ids(items)
    day, flags = _span(result)
    if kind == "missing_in_database":
        return (
            f"{_plural(n, 'payment')} ({_money(items)}) collected by Stripe "
            f"{'is' if n == 1 else 'are'} missing "
            f"from the database: {ids}. Likely cause: webhook failures. Check that Stripe webhooks "
            "reach "
            f"your endpoint, then run `recon-dagster sync {flags}` (or the sync_missing_payments "
            "job) to insert them."
        )
    if kind == "missing_in_stripe":
        return (
            f"{_plural(n, 'database payment')} ({_money(items)}) {'has' if n == 1 else 'have'} no "
            "Stripe charge: "
            f"{ids}. Likely cause: manual entries or test data written straight to the database. "
            "Review them with whoever created them; they cannot be synced from Stripe."
        )
    if kind == "amount_mismatches":
        f = items[0]
        example = (
            f"{f.payment_id}: Stripe {format_major(f.stripe_amount or 0, f.currency)} vs database "
            f"{format_major(f.database_amount or 0, f.currency)}"
        )
        refunded = sum(1 for i in items if i.stripe_refunded)
        cause = (
            f"Stripe shows refunds on {refunded} of them: likely refund timing (refunds after the "
            "reconciliation window). Re-run the day after refunds settle (`recon-dagster "
            f"reconcile {flags}`)."
            if refunded
            else "Likely cause: partial captures or an application that rewrites amounts. Correct "
            f"the rows, then re-run the day (`recon-dagster reconcile {flags}`)."
        )
        return (
            f"{_plural(n, 'payment')} {_verb(n, 'differ')} in amount by {_money(items)} in total "
            f"(e.g. {example}). {cause}"
        )
    if kind == "status_mismatches":
        f = items[0]
        return (
            f"{_plural(n, 'payment')} ({_money(items)}) {_verb(n, 'disagree')} on whether money "
            "was collected "
            f"(e.g. {f.payment_id}: Stripe '{f.stripe_status}', database '{f.database_status}'): "
            f"{ids}. Likely "
            "cause: missed charge.failed / charge.captured webhooks. Check the webhook endpoint, "
            f"correct the statuses, then re-run the day (`recon-dagster reconcile {flags}`)."
        )
    if kind == "refund_mismatches":
        return (
            f"{_plural(n, 'refund')} {'is' if n == 1 else 'are'} recorded differently in Stripe "
            "and the database "
            f"(Stripe refunded {_money(items, field='stripe_refunded')} vs database "
            f"{_money(items, field='database_refunded')}): {ids}. Likely cause: refund timing or a "
            "missed charge.refunded webhook. Check the webhook endpoint, then re-run the day "
            f"(`recon-dagster reconcile {flags}`)."
        )
    if kind == "duplicates_in_database":
        return (
            f"{_plural(n, 'Stripe charge')} {'is' if n == 1 else 'are'} recorded more than once in "
            "the database "
            f"(extra {_money(items)}): {ids}. Likely cause: a webhook retry processed twice. "
            "Remove the extra rows and add a UNIQUE constraint on the charge id column."
        )
    if kind == "currency_mismatches":
        f = items[0]
        return (
            f"{_plural(n, 'payment')} {'is' if n == 1 else 'are'} recorded in another currency "
            "than Stripe's "
            f"(e.g. {f.payment_id}: Stripe {f.stripe_currency}, database {f.database_currency}): "
            f"{ids}. "
            "Likely cause: the application stores a display currency. Correct the rows, then "
            "re-run the day."
        )
    if kind == "disputes":
        lost = [
            f for f in items if f.dispute_status == "lost" and f.difference
        ]  # a recorded chargeback has none
        open_ = [f for f in items if f.dispute_status in OPEN_DISPUTES]
        parts = []
        if lost:
            parts.append(
                f"{_plural(len(lost), 'dispute')} lost: Stripe took back "
                f"{_money(lost, field='stripe_amount')} "
                f"({_ids(lost)}). Record the chargeback{'s' if len(lost) > 1 else ''} in the "
                "payments table (add the "
                "dispute's amount to the row's refunded amount, or mark a whole-amount chargeback "
                "refunded), so that the "
                "books show the money as gone; a recorded chargeback no longer counts."
            )
        if open_:
            parts.append(
                f"{_plural(len(open_), 'open dispute')} put {_money(open_, field='stripe_amount')} "
                "at risk "
                f"({_ids(open_)}): submit evidence in the Stripe Dashboard before each dispute's "
                "due date."
            )
        others = len(items) - len(lost) - len(open_)
        if others:
            parts.append(f"{_plural(others, 'other dispute')} (won or closed) need no action.")
        return " ".join(parts)
    if kind == "invalid_rows":
        shown = "; ".join(
            f"{f.source or 'row'} "
            f"{f.payment_id or f'(no id, created {f.stripe_created or f.database_created})'}: "
            f"{f.detail}"
            for f in items[:_MAX_IDS]
        )
        more = f" and {len(items) - _MAX_IDS} more" if len(items) > _MAX_IDS else ""
        return (
            f"{_plural(len(items), 'row')} could not be reconciled and "
            f"{'was' if len(items) == 1 else 'were'} left "
            f"out: {shown}{more}. Fix {'it' if len(items) == 1 else 'them'} at the source, then "
            f"re-run the day (`recon-dagster reconcile {flags}`)."
        )
    # timing_differences
    return (
        f"{_plural(n, 'payment')} {_verb(n, 'fall')} on the other side of midnight ({ids}): likely "
        "time zones or a recording delay, not money lost. They are matched across the day boundary "
        "and do not count against the tolerance; reconcile the two days as one range to confirm "
        f"(`recon-dagster reconcile --start <first day> --end <second day>`)."
    )


def recommend(result: ReconciliationResult) -> list[str]:
    """Ranked recommendations for a result's findings (a clean day gets one line saying so)."""
    if result.status == "error":
        return list(result.recommendations)
    base = {t.currency: t.stripe_total for t in result.totals}
    by_kind: dict[str, list[Finding]] = defaultdict(list)
    for f in result.findings:
        by_kind[f.kind].append(f)

    def stake(items: list[Finding]) -> Decimal:
        per_currency: dict[str, int] = defaultdict(int)
        for f in items:
            # Open disputes are money at risk: ranked by it, though not counted against the
            # tolerance.
            at_risk = f.kind == "disputes" and f.dispute_status in OPEN_DISPUTES
            per_currency[f.currency] += abs(f.stripe_amount or 0) if at_risk else abs(f.difference)
        return max(Decimal(v) / max(base.get(c, 0), 1) for c, v in per_currency.items())

    ranked = sorted(by_kind.items(), key=lambda kv: (-stake(kv[1]), -len(kv[1]), kv[0]))
    out = [_text(kind, items, result) for kind, items in ranked]

    # Lost disputes add to the gross figure without being an offset: leave the ones it counts out of
    # this test.
    counted_lost: dict[str, int] = defaultdict(int)
    for f in result.findings:
        if f.kind == "disputes":
            counted_lost[f.currency] += f.difference
    offset = [
        t for t in result.totals if t.gross_discrepancy - counted_lost[t.currency] > t.discrepancy
    ]
    if offset and any(
        t.gross_discrepancy_percentage > result.tolerance_percentage >= t.discrepancy_percentage
        for t in offset
    ):
        t = offset[0]
        out.insert(
            0,
            f"Differences offset each other in {t.currency}: the totals differ by only "
            f"{t.discrepancy_percentage:.2f}%, but the payments themselves differ by "
            f"{format_major(t.gross_discrepancy, t.currency)} "
            f"({t.gross_discrepancy_percentage:.2f}%). Review the items below.",
        )
    if not out:
        day, _ = _span(result)
        out.append(
            f"No discrepancies: Stripe and the database agree for {day}"
            + ("" if result.date == result.end_date else f" to {result.end_date.isoformat()}")
            + "."
        )
    return out
