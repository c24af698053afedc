"""Match Stripe charges to payment rows, classify every difference, total per currency.

One full outer join on the charge id does the matching; the classes are vectorised boolean
columns over the joined frame, and only the (few) rows that carry a finding leave Polars as
Python objects. Everything is in integer minor units; percentages are derived at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import polars as pl

from .grading import exceeds
from .recommend import recommend
from .frames import CHARGES_SCHEMA, PAYMENTS_SCHEMA, conform
from .result import CLASSES, CurrencyTotals, Finding, ReconcileParams, ReconciliationResult

# A database row in one of these statuses took the money and gave all of it back: it counts as
# paid, and when no refunded column is configured its refunded amount is its whole amount.
REFUNDED_STATUSES: tuple[str, ...] = ("refunded",)

# (ids only in Stripe's window, ids only in the database's) -> (their charges, their payment
# rows) found just outside the window.
NeighbourLookup = Callable[[list[str], list[str]], tuple[pl.DataFrame | None, pl.DataFrame | None]]

_KIND_ORDER = {kind: i for i, kind in enumerate(CLASSES)}


def _stripe_side(charges: pl.DataFrame, include_refunds: bool) -> pl.LazyFrame:
    # Money was collected only by a succeeded, captured charge; an authorisation is not money.
    collected = (pl.col("status") == "succeeded") & pl.col("paid") & pl.col("captured")
    net = pl.col("amount_captured") - (pl.col("amount_refunded") if include_refunds else pl.lit(0))
    return charges.lazy().select(
        "id",
        s_currency=pl.col("currency"),
        s_status=pl.col("status"),
        s_paid=collected,
        s_gross=pl.col("amount_captured"),
        s_refunded=pl.col("amount_refunded"),
        s_amt=pl.when(collected).then(net).otherwise(0),
        s_created=pl.col("created"),
    )


def _database_side(payments: pl.DataFrame, params: ReconcileParams) -> pl.LazyFrame:
    status = pl.col("status").str.to_lowercase()
    refunded_status = status.is_in([s.lower() for s in REFUNDED_STATUSES])
    paid = status.is_in([s.lower() for s in params.paid_statuses]) | refunded_status
    refunded = pl.when(pl.col("refunded").is_not_null()).then(pl.col("refunded"))
    refunded = refunded.when(refunded_status & pl.lit(not params.refunds_tracked)).then(pl.col("amount"))
    refunded = refunded.otherwise(0)
    net = pl.col("amount") - (refunded if params.include_refunds else pl.lit(0))
    return payments.lazy().select(
        "id",
        d_currency=pl.col("currency"),
        d_status=pl.col("status"),
        d_paid=paid,
        d_gross=pl.col("amount"),
        d_refunded=refunded,
        d_amt=pl.when(paid).then(net).otherwise(0),
        d_created=pl.col("created_at"),
    )


def _duplicated(ids: pl.Series) -> pl.Series:
    """`ids.is_duplicated()`, cheaper: hash once to u64, then confirm the few candidates on the text."""
    hashes = ids.hash()
    candidates = hashes.is_duplicated()
    if not candidates.any():
        return candidates
    maybe = ids.filter(candidates)  # a hash collision between two distinct ids is not a duplicate
    return candidates & hashes.is_in(maybe.filter(maybe.is_duplicated()).hash().unique())


def _collapse_duplicates(db: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[str, str, int]]]:
    """One row per id: the earliest row stands for the payment, the others are extra.

    Returns the collapsed frame (`d_extra`: extra money in the payment's own currency) and the
    extra rows recorded in another currency, as (id, currency, amount).
    """
    dup = _duplicated(db["id"])
    singles = db.with_columns(d_count=pl.lit(1, pl.UInt32), d_extra=pl.lit(0, pl.Int64))
    if not dup.any():
        return singles, []
    # Sorting on every column makes the representative independent of the input row order.
    rows = db.filter(dup).sort(["id", "d_created", "d_gross", "d_status", "d_currency", "d_refunded"])
    rows = rows.with_columns(first=pl.int_range(pl.len()).over("id") == 0,
                             rep_currency=pl.col("d_currency").first().over("id"))  # fmt: skip
    same = pl.col("d_currency") == pl.col("rep_currency")
    collapsed = rows.group_by("id", maintain_order=True).agg(
        pl.all().exclude("first", "rep_currency").first(),
        d_count=pl.len(),
        d_extra=pl.col("d_amt").filter(~pl.col("first") & same).sum(),
    )
    foreign = rows.filter(~pl.col("first") & ~same & (pl.col("d_amt") != 0))
    extras = [(r["id"], r["d_currency"], r["d_amt"]) for r in foreign.select("id", "d_currency", "d_amt").to_dicts()]
    return pl.concat([singles.filter(~dup), collapsed.select(singles.columns)], how="vertical"), extras


def _classify(joined: pl.LazyFrame, params: ReconcileParams) -> pl.LazyFrame:
    in_s = pl.col("s_currency").is_not_null()
    in_d = pl.col("d_currency").is_not_null()
    same = pl.col("s_currency") == pl.col("d_currency")
    both = in_s & in_d
    both_paid = both & same & pl.col("s_paid") & pl.col("d_paid")
    refund_mm = both_paid & pl.lit(params.refunds_tracked) & (pl.col("s_refunded") != pl.col("d_refunded"))
    amount_mm = both_paid & (pl.col("s_amt") != pl.col("d_amt")) & ~(refund_mm & (pl.col("s_gross") == pl.col("d_gross")))
    return joined.with_columns(
        missing_in_database=in_s & ~in_d & pl.col("s_paid"),
        missing_in_stripe=in_d & ~in_s & pl.col("d_paid"),
        amount_mismatches=amount_mm,
        status_mismatches=both & same & (pl.col("s_paid") != pl.col("d_paid")),
        refund_mismatches=refund_mm,
        duplicates_in_database=in_d & (pl.col("d_count") > 1),
        currency_mismatches=both & ~same,
    )


def _percent(part: int, base: int) -> float:
    if base == 0:
        return 100.0 if part else 0.0
    return float(round(Decimal(part) * 100 / Decimal(base), 6))


def _found_in(ids: list[str], frame: pl.DataFrame | None) -> dict[str, dict]:
    """The earliest counterpart of each id in `frame` (ties broken on every column: order-free)."""
    if frame is None or frame.is_empty() or not ids:
        return {}
    rows = frame.filter(pl.col("id").is_in(ids)).sort(frame.columns).unique(subset="id", keep="first", maintain_order=True)
    return {row["id"]: row for row in rows.to_dicts()}


def reconcile(
    charges: pl.DataFrame,
    payments: pl.DataFrame,
    params: ReconcileParams,
    *,
    neighbour_charges: pl.DataFrame | None = None,
    neighbour_payments: pl.DataFrame | None = None,
    find_neighbours: NeighbourLookup | None = None,
) -> ReconciliationResult:
    """Reconcile one window (a day or a range) of charges against its payment rows.

    `neighbour_*` hold counterparts found just outside the window (across midnight) for ids that
    are unmatched inside it; such a pair is a timing difference, not a missing payment. Instead of
    loading neighbouring days up front, a caller may pass `find_neighbours`, which is asked only
    for the ids left unmatched.
    """
    charges = conform(charges, CHARGES_SCHEMA, "charges")
    payments = conform(payments, PAYMENTS_SCHEMA, "payments")

    stripe = _stripe_side(charges, params.include_refunds)
    database = _database_side(payments, params).collect()
    collapsed, foreign_extras = _collapse_duplicates(database)
    joined = stripe.join(collapsed.lazy(), on="id", how="full", coalesce=True)
    issues, s_totals = pl.collect_all(
        [
            _classify(joined, params).filter(pl.any_horizontal(list(CLASSES[:-1]))),
            stripe.filter("s_paid").group_by("s_currency").agg(pl.col("s_amt").sum(), pl.len()),
        ]
    )
    d_totals = database.filter("d_paid").group_by("d_currency").agg(pl.col("d_amt").sum(), pl.len())

    rows = issues.to_dicts()
    if find_neighbours is not None:
        stripe_only = [r["id"] for r in rows if r["missing_in_database"]]
        db_only = [r["id"] for r in rows if r["missing_in_stripe"]]
        if stripe_only or db_only:
            neighbour_charges, neighbour_payments = find_neighbours(stripe_only, db_only)
    findings, gross = _findings(rows, params, neighbour_charges, neighbour_payments, foreign_extras)
    totals = _totals(s_totals, d_totals, gross)
    result = _result(params, charges.height, payments.height, totals, findings)
    return result.with_recommendations(recommend(result))


def _findings(
    rows: list[dict],
    params: ReconcileParams,
    neighbour_charges: pl.DataFrame | None,
    neighbour_payments: pl.DataFrame | None,
    foreign_extras: list[tuple[str, str, int]] = (),
) -> tuple[list[Finding], dict[str, int]]:
    """Turn flagged joined rows into findings, and add up the gross discrepancy per currency."""
    # Counterparts across midnight turn "missing" into "timing difference".
    across_db = _found_in([r["id"] for r in rows if r["missing_in_database"]], neighbour_payments)
    across_stripe = _found_in([r["id"] for r in rows if r["missing_in_stripe"]], neighbour_charges)

    findings: list[Finding] = []
    gross: dict[str, int] = {}

    def add(currency: str, amount: int) -> None:
        gross[currency] = gross.get(currency, 0) + abs(amount)

    for r in rows:
        pid = r["id"]
        cur = r["s_currency"] or r["d_currency"]
        s_amt, d_amt, extra = r["s_amt"] or 0, r["d_amt"] or 0, r["d_extra"] or 0
        common = dict(payment_id=pid, currency=cur, stripe_status=r["s_status"], database_status=r["d_status"],
                      stripe_created=r["s_created"], database_created=r["d_created"])  # fmt: skip

        if r["missing_in_database"] and pid in across_db:
            other = across_db[pid]
            findings.append(Finding(kind="timing_differences", stripe_amount=s_amt, database_amount=other["amount"],
                                    **{**common, "database_created": other["created_at"], "database_status": other["status"]},
                                    detail="recorded in the database on the neighbouring day"))  # fmt: skip
            continue
        if r["missing_in_stripe"] and pid in across_stripe:
            other = across_stripe[pid]
            findings.append(Finding(kind="timing_differences", stripe_amount=other["amount_captured"], database_amount=d_amt,
                                    **{**common, "stripe_created": other["created"], "stripe_status": other["status"]},
                                    detail="created in Stripe on the neighbouring day"))  # fmt: skip
            continue

        if r["missing_in_database"]:
            findings.append(Finding(kind="missing_in_database", stripe_amount=s_amt, difference=s_amt, **common))
            add(cur, s_amt)
        if r["missing_in_stripe"]:
            findings.append(Finding(kind="missing_in_stripe", database_amount=d_amt, difference=-d_amt, **common))
            add(cur, d_amt)
        if r["currency_mismatches"]:
            # `difference` holds the Stripe amount left unmatched in Stripe's currency (for ranking).
            findings.append(Finding(kind="currency_mismatches", stripe_amount=s_amt, database_amount=d_amt, difference=s_amt,
                                    stripe_currency=r["s_currency"], database_currency=r["d_currency"], **common))  # fmt: skip
            add(r["s_currency"], s_amt)
            add(r["d_currency"], d_amt)
        if r["status_mismatches"]:
            collected = "Stripe collected it" if r["s_paid"] else "the database counts it as paid"
            findings.append(Finding(kind="status_mismatches", stripe_amount=s_amt, database_amount=d_amt,
                                    difference=s_amt - d_amt, detail=collected, **common))  # fmt: skip
            add(cur, s_amt - d_amt)
        if r["amount_mismatches"]:
            detail = f"Stripe shows {r['s_refunded']} refunded" if r["s_refunded"] and not params.refunds_tracked else ""
            findings.append(Finding(kind="amount_mismatches", stripe_amount=s_amt, database_amount=d_amt,
                                    difference=s_amt - d_amt, stripe_refunded=r["s_refunded"], detail=detail, **common))  # fmt: skip
            add(cur, s_amt - d_amt)
        if r["refund_mismatches"]:
            # Counted as money only when refunds are compared and the amount mismatch above has
            # not already counted it.
            at_stake = s_amt - d_amt if params.include_refunds and not r["amount_mismatches"] else 0
            findings.append(Finding(kind="refund_mismatches", stripe_amount=s_amt, database_amount=d_amt,
                                    difference=at_stake, stripe_refunded=r["s_refunded"],
                                    database_refunded=r["d_refunded"], **common))  # fmt: skip
            add(cur, at_stake)
        if r["duplicates_in_database"]:
            findings.append(Finding(kind="duplicates_in_database", stripe_amount=s_amt if r["s_currency"] else None,
                                    database_amount=d_amt + extra, difference=-extra,
                                    database_count=r["d_count"], **{**common, "currency": r["d_currency"]}))  # fmt: skip
            add(r["d_currency"], extra)

    for _pid, currency, amount in foreign_extras:  # duplicate rows recorded in another currency
        add(currency, amount)
    findings.sort(key=lambda f: (_KIND_ORDER[f.kind], -abs(f.difference), f.payment_id))
    return findings, gross


def _totals(s_totals: pl.DataFrame, d_totals: pl.DataFrame, gross: dict[str, int]) -> list[CurrencyTotals]:
    s = {r["s_currency"]: (r["s_amt"], r["len"]) for r in s_totals.to_dicts()}
    d = {r["d_currency"]: (r["d_amt"], r["len"]) for r in d_totals.to_dicts()}
    out = []
    for cur in sorted(set(s) | set(d) | set(gross)):
        s_amt, s_n = s.get(cur, (0, 0))
        d_amt, d_n = d.get(cur, (0, 0))
        net = abs(s_amt - d_amt)
        g = gross.get(cur, 0)
        out.append(CurrencyTotals(currency=cur, stripe_total=s_amt, database_total=d_amt, stripe_count=s_n,
                                  database_count=d_n, discrepancy=net, gross_discrepancy=g,
                                  discrepancy_percentage=_percent(net, s_amt),
                                  gross_discrepancy_percentage=_percent(g, s_amt)))  # fmt: skip
    return out


def _result(params: ReconcileParams, n_charges: int, n_payments: int, totals: list[CurrencyTotals], findings: list[Finding]) -> ReconciliationResult:
    # Headline currency: the one whose gross discrepancy is the largest share of its Stripe total.
    head = max(totals, key=lambda t: (Decimal(t.gross_discrepancy_percentage), t.stripe_total, t.currency), default=None)
    result = ReconciliationResult(
        date=params.start,
        end_date=params.end,
        timezone=params.timezone,
        status="success",
        currency=head.currency if head else None,
        stripe_total=head.stripe_total if head else 0,
        database_total=head.database_total if head else 0,
        discrepancy=head.discrepancy if head else 0,
        discrepancy_percentage=head.discrepancy_percentage if head else 0.0,
        gross_discrepancy=head.gross_discrepancy if head else 0,
        gross_discrepancy_percentage=head.gross_discrepancy_percentage if head else 0.0,
        tolerance_percentage=params.tolerance_percentage,
        include_refunds=params.include_refunds,
        totals=tuple(totals),
        findings=tuple(findings),
        stripe_count=n_charges,
        database_count=n_payments,
    )
    if exceeds(result, Decimal(str(params.tolerance_percentage))):
        result = replace(result, status="discrepancy_found")
    return result
