"""Match Stripe charges to payment rows, classify every difference, total per currency.

Rows a source marked invalid are set apart first (listed as `invalid_rows`, never matched); each
remaining row is given the charge it stands for (`keys`: its charge id, or its PaymentIntent's
charge). One full outer join on that charge id does the matching (on the id's u64 hash, see
`ids`); the classes are vectorised boolean columns over the joined frame, and only the rows that
carry a finding go on to `findings`, with the day's disputes. Everything is in integer minor
units; percentages come last.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import polars as pl

from recon_dagster.core.findings import build_findings, dispute_totals, gross_by_currency
from recon_dagster.core.frames import CHARGES_SCHEMA, PAYMENTS_SCHEMA, conform
from recon_dagster.core.grading import exceeds
from recon_dagster.core.keys import keyed
from recon_dagster.core.recommend import recommend
from recon_dagster.core.result import (
    CLASSES,
    CurrencyTotals,
    ReconcileParams,
    ReconciliationResult,
)
from recon_dagster.core.sides import (
    DATABASE_DETAILS,
    STRIPE_DETAILS,
    collapse_duplicates,
    database_side,
    keys_tell_apart,
    stripe_side,
    with_details,
    with_recorded_chargebacks,
)

# The classes the join decides (the others come from neighbours, disputes and invalid rows).
JOIN_CLASSES = CLASSES[:7]

# (ids only in Stripe's window, ids only in the database's) -> (their charges, their payment
# rows) found just outside the window.
NeighbourLookup = Callable[[list[str], list[str]], tuple[pl.DataFrame | None, pl.DataFrame | None]]

IN_STRIPE, IN_DATABASE = pl.col("s_id").is_not_null(), pl.col("d_id").is_not_null()
# Two different ids paired by equal hashes: the hash join must be redone on the ids themselves.
COLLISION = IN_STRIPE & IN_DATABASE & (pl.col("s_id") != pl.col("d_id"))


def _classify(joined: pl.LazyFrame, params: ReconcileParams) -> pl.LazyFrame:
    same = pl.col("s_ccy") == pl.col("d_ccy")
    both = IN_STRIPE & IN_DATABASE
    both_paid = both & same & pl.col("s_paid") & pl.col("d_paid")
    refund_mm = (
        both_paid & pl.lit(params.refunds_tracked) & (pl.col("s_refunded") != pl.col("d_refunded"))
    )
    amount_mm = (
        both_paid
        & (pl.col("s_amt") != pl.col("d_amt"))
        & ~(refund_mm & (pl.col("s_gross") == pl.col("d_gross")))
    )
    return joined.with_columns(
        missing_in_database=IN_STRIPE & ~IN_DATABASE & pl.col("s_paid"),
        missing_in_stripe=IN_DATABASE & ~IN_STRIPE & pl.col("d_paid"),
        amount_mismatches=amount_mm,
        status_mismatches=both & same & (pl.col("s_paid") != pl.col("d_paid")),
        refund_mismatches=refund_mm,
        duplicates_in_database=IN_DATABASE & (pl.col("d_count") > 1),
        currency_mismatches=both & ~same,
    )


# Rows per part of the full join. The streaming join holds about 150 MiB per million rows it
# joins, so a large day is joined in parts, split by the ids' hash: both rows of a pair share it,
# so every pair lands in one part and the parts' results add up to the whole join's. A 1M-row day
# joined in two parts takes ~35 MiB less at its peak for no measurable time (`bench_reconcile.py`).
JOIN_PART_ROWS = 500_000
# But each part reads both sides whole to pick its rows, so k parts cost k reads: at 10M rows,
# twenty parts took 1.73 s where four took 0.97 s (two, 0.91 s, held ~250 MiB more).
MAX_JOIN_PARTS = 4


def _flagged(
    stripe: pl.LazyFrame, database: pl.LazyFrame, params: ReconcileParams, *, on_hash: bool
) -> pl.LazyFrame:
    left, right = stripe.drop(STRIPE_DETAILS), database.drop(DATABASE_DETAILS)
    if on_hash:
        joined = left.join(right, on="h", how="full")
    else:
        joined = left.join(right, left_on="s_id", right_on="d_id", how="full", coalesce=False)
    flags = pl.any_horizontal(list(JOIN_CLASSES)) | (COLLISION if on_hash else pl.lit(False))
    return _classify(joined, params).filter(flags).with_columns(id=pl.coalesce("s_id", "d_id"))


def flag_rows(
    stripe: pl.DataFrame,
    database: pl.LazyFrame,
    params: ReconcileParams,
    *,
    part_rows: int = JOIN_PART_ROWS,
    currency_keys: bool = True,
) -> pl.DataFrame:
    """The joined rows that carry a class, with their `id`.

    The join is on the ids' u64 hashes (`h`), about twice as fast as on the strings, in parts of
    about `part_rows` rows (`JOIN_PART_ROWS`), at most `MAX_JOIN_PARTS` of them. Every pair it
    makes is checked on the ids; should two different ids ever share a hash, the join is done
    again on the ids themselves, in one piece, so the answer is always exact. Currencies are
    compared by their u64 keys (`s_ccy`, `d_ccy`) unless `currency_keys` is false (two of the
    day's codes share a key): then by the codes.
    """
    if not currency_keys:
        stripe = stripe.with_columns(s_ccy=pl.col("s_currency"))
        database = database.with_columns(d_ccy=pl.col("d_currency"))
    rows = max(stripe.height, database.select(pl.len()).collect().item())
    parts = min(max(1, -(-rows // part_rows)), MAX_JOIN_PARTS)
    flagged = pl.concat(
        [
            _flagged(
                stripe.lazy().filter(pl.col("h") % parts == i),
                database.filter(pl.col("h") % parts == i),
                params,
                on_hash=True,
            ).collect()  # one part after the other: that is what keeps the peak down
            for i in range(parts)
        ]
    )
    if flagged.select(COLLISION.any()).item():
        flagged = _flagged(stripe.lazy(), database, params, on_hash=False).collect()
    return flagged


def _percent(part: int, base: int) -> float:
    if base == 0:
        return 100.0 if part else 0.0
    return float(round(Decimal(part) * 100 / Decimal(base), 6))


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
    charges, bad_charges = _quarantine(conform(charges, CHARGES_SCHEMA, "charges"))
    payments, bad_payments = _quarantine(conform(payments, PAYMENTS_SCHEMA, "payments"))
    payments, bad_ids = keyed(payments, charges, params.match_on)

    stripe = stripe_side(charges, params.include_refunds)
    database = database_side(payments, params)
    collapsed, foreign_extras = collapse_duplicates(database)
    stripe, recorded_chargebacks = with_recorded_chargebacks(
        stripe, charges, database, params.include_refunds
    )
    s_totals, d_totals = pl.collect_all([_by_currency(stripe, "s"), _by_currency(database, "d")])
    flagged = with_details(
        flag_rows(stripe, collapsed, params, currency_keys=keys_tell_apart(s_totals, d_totals)),
        charges,
        database,
    )

    if find_neighbours is not None:
        # A charge missing from the table may be recorded across midnight under its intent's id.
        unmatched = flagged.filter("missing_in_database")
        stripe_only = (
            unmatched.get_column("id").to_list()
            + unmatched.get_column("s_intent").drop_nulls().to_list()
        )
        db_only = flagged.filter("missing_in_stripe").get_column("id").to_list()
        if stripe_only or db_only:
            neighbour_charges, neighbour_payments = find_neighbours(stripe_only, db_only)
    invalid = pl.concat(
        [
            _invalid(bad_charges, "stripe", "created"),
            _invalid(pl.concat([bad_payments, bad_ids]), "database", "created_at"),
        ]
    )
    findings = build_findings(
        flagged,
        params,
        neighbour_charges,
        neighbour_payments,
        charges=charges,
        invalid=invalid,
        recorded_chargebacks=recorded_chargebacks,
    )
    totals = _totals(
        s_totals, d_totals, gross_by_currency(findings, foreign_extras), dispute_totals(findings)
    )
    result = _result(params, charges.height, payments.height, totals, findings)
    return result.with_recommendations(recommend(result))


def _by_currency(side: pl.DataFrame, p: str) -> pl.LazyFrame:
    """One side's money and count of paid rows per currency. A row that is not paid has an amount
    of 0, so summing every row gives the paid rows' total without filtering them first."""
    return (
        side.lazy()
        .group_by(f"{p}_currency")
        .agg(pl.col(f"{p}_amt").sum(), pl.col(f"{p}_paid").sum())
    )


def _quarantine(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the rows to reconcile, the rows a source marked invalid or that have no id)."""
    bad = pl.col("invalid_reason").is_not_null() | pl.col("id").is_null()
    # Null counts are known without a query: most frames have no bad row.
    if frame.get_column("invalid_reason").null_count() == frame.height and not (
        frame.get_column("id").null_count()
    ):
        return frame, frame.clear()
    marked = frame.filter(bad).with_columns(
        invalid_column=pl.coalesce("invalid_column", pl.lit("id")),
        invalid_reason=pl.coalesce("invalid_reason", pl.lit("NULL id")),
    )
    return frame.filter(~bad), marked


def _invalid(rows: pl.DataFrame, source: str, created: str) -> pl.DataFrame:
    """Quarantined rows of either side, in one shape: where, which row, which column, why."""
    return rows.select(
        source=pl.lit(source),
        id="id",
        created=created,
        column="invalid_column",
        reason="invalid_reason",
        currency="currency",
    )


def _totals(
    s_totals: pl.DataFrame,
    d_totals: pl.DataFrame,
    gross: dict[str, int],
    disputes: dict[str, tuple[int, int]],
) -> list[CurrencyTotals]:
    # Only a currency with a paid row has totals.
    s = {c: (amt, n) for c, amt, n in s_totals.iter_rows() if n}
    d = {c: (amt, n) for c, amt, n in d_totals.iter_rows() if n}
    out = []
    for cur in sorted(set(s) | set(d) | set(gross) | set(disputes)):
        s_amt, s_n = s.get(cur, (0, 0))
        d_amt, d_n = d.get(cur, (0, 0))
        net = abs(s_amt - d_amt)
        g = gross.get(cur, 0)
        out.append(
            CurrencyTotals(
                currency=cur,
                stripe_total=s_amt,
                database_total=d_amt,
                stripe_count=s_n,
                database_count=d_n,
                discrepancy=net,
                gross_discrepancy=g,
                discrepancy_percentage=_percent(net, s_amt),
                gross_discrepancy_percentage=_percent(g, s_amt),
                disputes_lost=disputes.get(cur, (0, 0))[0],
                disputes_open=disputes.get(cur, (0, 0))[1],
            )
        )
    return out


def _result(
    params: ReconcileParams,
    n_charges: int,
    n_payments: int,
    totals: list[CurrencyTotals],
    findings: pl.DataFrame,
) -> ReconciliationResult:
    # Headline currency: the one whose gross discrepancy is the largest share of its Stripe total.
    head = max(
        totals,
        key=lambda t: (Decimal(t.gross_discrepancy_percentage), t.stripe_total, t.currency),
        default=None,
    )
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
        findings=findings,  # kept as the frame: see `result._Findings`
        stripe_count=n_charges,
        database_count=n_payments,
    )
    # A Stripe object we could not read leaves the day's Stripe side partial: never a success.
    left_out = findings.select(
        ((pl.col("kind") == "invalid_rows") & (pl.col("source") == "stripe")).any()
    ).item()
    if left_out or exceeds(result, Decimal(str(params.tolerance_percentage))):
        result = result.with_changes(status="discrepancy_found")
    return result
