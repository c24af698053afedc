"""Findings -> ranked, specific recommendations, each pointing at an action the product offers.

Ranked by money at stake, as a share of the currency's Stripe total (amounts in different
currencies cannot be added). The first three are what alerts show. The findings are read as their
frame (`result.findings_frame`): sums in Polars, objects only for the few a text quotes.
"""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from recon_dagster.core.finding_frame import to_objects
from recon_dagster.core.result import OPEN_DISPUTES, Finding, ReconciliationResult
from recon_dagster.money import format_major

_MAX_IDS = 3
KIND, CURRENCY, DIFFERENCE = pl.col("kind"), pl.col("currency"), pl.col("difference")
OPEN = pl.col("dispute_status").is_in(list(OPEN_DISPUTES))
LOST = (pl.col("dispute_status") == "lost") & (DIFFERENCE != 0)  # a recorded chargeback has none


def _ids(findings: pl.DataFrame) -> str:
    shown = ", ".join(findings.get_column("payment_id").head(_MAX_IDS).to_list())
    more = findings.height - _MAX_IDS
    return shown + (f" and {more} more" if more > 0 else "")


# The money a text quotes, per kind: the sum of |column| over its findings (or over its lost or
# open disputes), currency by currency.
_SUMS = {
    "difference": DIFFERENCE.abs(),
    "stripe_refunded": pl.col("stripe_refunded").fill_null(0).abs(),
    "database_refunded": pl.col("database_refunded").fill_null(0).abs(),
    "lost": pl.col("stripe_amount").fill_null(0).abs().filter(LOST),
    "open": pl.col("stripe_amount").fill_null(0).abs().filter(OPEN),
}


class _Kind:
    """One class's findings, with what its recommendation quotes: money per currency in one
    query for every class, not one per text."""

    def __init__(self, items: pl.DataFrame, sums: list[dict]) -> None:
        self.items = items
        self.sums = sums  # one row per currency, in currency order

    def money(self, what: str = "difference") -> str:
        """'2.50 EUR + 10.00 USD': the currencies with findings (of that subset) only."""
        subset = f"{what}_n" if what in ("lost", "open") else "n"
        return " + ".join(
            format_major(row[what], row["currency"]) for row in self.sums if row[subset]
        )


def _first(findings: pl.DataFrame, n: int = 1) -> list[Finding]:
    return to_objects(findings.head(n))


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _verb(n: int, plural_form: str) -> str:
    """'differ' -> 'differs' for one item."""
    return plural_form + "s" if n == 1 else plural_form


def _span(result: ReconciliationResult) -> tuple[str, str]:
    start, end = result.date.isoformat(), result.end_date.isoformat()
    return start, (f"--start {start}" if start == end else f"--start {start} --end {end}")


def _text(kind: str, of: _Kind, result: ReconciliationResult) -> str:
    items = of.items
    n, ids = items.height, _ids(items)
    day, flags = _span(result)
    if kind == "missing_in_database":
        return (
            f"{_plural(n, 'payment')} ({of.money()}) collected by Stripe "
            f"{'is' if n == 1 else 'are'} missing "
            f"from the database: {ids}. Likely cause: webhook failures. Check that Stripe webhooks "
            "reach "
            f"your endpoint, then run `recon-dagster sync {flags}` (or the sync_missing_payments "
            "job) to insert them."
        )
    if kind == "missing_in_stripe":
        return (
            f"{_plural(n, 'database payment')} ({of.money()}) {'has' if n == 1 else 'have'} no "
            "Stripe charge: "
            f"{ids}. Likely cause: manual entries or test data written straight to the database. "
            "Review them with whoever created them; they cannot be synced from Stripe."
        )
    if kind == "amount_mismatches":
        [f] = _first(items)
        example = (
            f"{f.payment_id}: Stripe {format_major(f.stripe_amount or 0, f.currency)} vs database "
            f"{format_major(f.database_amount or 0, f.currency)}"
        )
        refunded = items.filter(pl.col("stripe_refunded").fill_null(0) != 0).height
        cause = (
            f"Stripe shows refunds on {refunded} of them: likely refund timing (refunds after the "
            "reconciliation window). Re-run the day after refunds settle (`recon-dagster "
            f"reconcile {flags}`)."
            if refunded
            else "Likely cause: partial captures or an application that rewrites amounts. Correct "
            f"the rows, then re-run the day (`recon-dagster reconcile {flags}`)."
        )
        return (
            f"{_plural(n, 'payment')} {_verb(n, 'differ')} in amount by {of.money()} in total "
            f"(e.g. {example}). {cause}"
        )
    if kind == "status_mismatches":
        [f] = _first(items)
        return (
            f"{_plural(n, 'payment')} ({of.money()}) {_verb(n, 'disagree')} on whether money "
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
            f"(Stripe refunded {of.money('stripe_refunded')} vs database "
            f"{of.money('database_refunded')}): {ids}. Likely cause: refund timing or a "
            "missed charge.refunded webhook. Check the webhook endpoint, then re-run the day "
            f"(`recon-dagster reconcile {flags}`)."
        )
    if kind == "duplicates_in_database":
        return (
            f"{_plural(n, 'Stripe charge')} {'is' if n == 1 else 'are'} recorded more than once in "
            "the database "
            f"(extra {of.money()}): {ids}. Likely cause: a webhook retry processed twice. "
            "Remove the extra rows and add a UNIQUE constraint on the charge id column."
        )
    if kind == "currency_mismatches":
        [f] = _first(items)
        return (
            f"{_plural(n, 'payment')} {'is' if n == 1 else 'are'} recorded in another currency "
            "than Stripe's "
            f"(e.g. {f.payment_id}: Stripe {f.stripe_currency}, database {f.database_currency}): "
            f"{ids}. "
            "Likely cause: the application stores a display currency. Correct the rows, then "
            "re-run the day."
        )
    if kind == "disputes":
        lost = items.filter(LOST)
        open_ = items.filter(OPEN)
        parts = []
        if lost.height:
            parts.append(
                f"{_plural(lost.height, 'dispute')} lost: Stripe took back "
                f"{of.money('lost')} "
                f"({_ids(lost)}). Record the chargeback{'s' if lost.height > 1 else ''} in the "
                "payments table (add the "
                "dispute's amount to the row's refunded amount, or mark a whole-amount chargeback "
                "refunded), so that the "
                "books show the money as gone; a recorded chargeback no longer counts."
            )
        if open_.height:
            parts.append(
                f"{_plural(open_.height, 'open dispute')} put "
                f"{of.money('open')} at risk "
                f"({_ids(open_)}): submit evidence in the Stripe Dashboard before each dispute's "
                "due date."
            )
        others = n - lost.height - open_.height
        if others:
            parts.append(f"{_plural(others, 'other dispute')} (won or closed) need no action.")
        return " ".join(parts)
    if kind == "invalid_rows":
        shown = "; ".join(
            f"{f.source or 'row'} "
            f"{f.payment_id or f'(no id, created {f.stripe_created or f.database_created})'}: "
            f"{f.detail}"
            for f in _first(items, _MAX_IDS)
        )
        more = f" and {n - _MAX_IDS} more" if n > _MAX_IDS else ""
        return (
            f"{_plural(n, 'row')} could not be reconciled and "
            f"{'was' if n == 1 else 'were'} left "
            f"out: {shown}{more}. Fix {'it' if n == 1 else 'them'} at the source, then "
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
    findings = result.findings_frame
    # Open disputes are money at risk: ranked by it, though not counted against the tolerance.
    at_risk = (KIND == "disputes") & OPEN
    stake = pl.when(at_risk).then(pl.col("stripe_amount").fill_null(0).abs())
    per_currency = (
        findings.group_by(KIND, CURRENCY)
        .agg(
            stake=stake.otherwise(DIFFERENCE.abs()).sum(),
            n=pl.len(),
            counted_lost=pl.when(KIND == "disputes").then(DIFFERENCE).otherwise(0).sum(),
            **{what: column.sum() for what, column in _SUMS.items()},
            lost_n=LOST.sum(),
            open_n=OPEN.sum(),
        )
        .sort(CURRENCY)
    )
    stakes: dict[str, Decimal] = {}
    sums: dict[str, list[dict]] = {}
    counted_lost: dict[str, int] = {}
    for row in per_currency.iter_rows(named=True):
        kind, currency = row["kind"], row["currency"]
        share = Decimal(row["stake"]) / max(base.get(currency, 0), 1)
        stakes[kind] = max(stakes.get(kind, share), share)
        sums.setdefault(kind, []).append(row)
        counted_lost[currency] = counted_lost.get(currency, 0) + row["counted_lost"]

    def size(kind: str) -> int:
        return sum(row["n"] for row in sums[kind])

    ranked = sorted(stakes, key=lambda kind: (-stakes[kind], -size(kind), kind))
    out = [_text(kind, _Kind(findings.filter(KIND == kind), sums[kind]), result) for kind in ranked]

    # Lost disputes add to the gross figure without being an offset: leave the ones it counts out of
    # this test.
    offset = [
        t
        for t in result.totals
        if t.gross_discrepancy - counted_lost.get(t.currency, 0) > t.discrepancy
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
