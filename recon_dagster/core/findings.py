"""Flagged rows -> findings: one `Finding` per payment and class, built column-wise in Polars.

Only the rows that carry a class reach this module (about 1% of a busy day), but that is still
thousands of rows, so each class is one `select` over them, and the findings stay a frame
(`finding_frame`): objects are made only for whoever reads `result.findings`. A missing payment
whose counterpart lies just across midnight becomes a timing difference here.
"""

from __future__ import annotations

from functools import cache

import polars as pl

from recon_dagster.core.finding_frame import FINDING_SCHEMA
from recon_dagster.core.frames import CHARGES_SCHEMA, PAYMENTS_SCHEMA, conform
from recon_dagster.core.result import CLASSES, OPEN_DISPUTES, REPORT_ONLY, ReconcileParams
from recon_dagster.money import format_major

S_AMT, D_AMT = pl.col("s_amt"), pl.col("d_amt")


def _columns(common: dict[str, pl.Expr], columns: dict[str, pl.Expr]) -> list[pl.Expr]:
    chosen = {**common, **columns}
    return [
        chosen.get(name, pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in FINDING_SCHEMA.items()
    ]


def _finding(kind: str, **columns: pl.Expr) -> list[pl.Expr]:
    """A joined class's finding columns; what the class does not set is null (or the common
    value)."""
    common = {
        "kind": pl.lit(kind),
        "payment_id": pl.col("id"),
        "currency": pl.coalesce("s_currency", "d_currency"),
        "difference": pl.lit(0),
        "stripe_status": pl.col("s_status"),
        "database_status": pl.col("d_status"),
        "stripe_created": pl.col("s_created"),
        "database_created": pl.col("d_created"),
        "detail": pl.lit(""),
        # The row's own id, where the table keeps another one than the charge's (a PaymentIntent
        # id).
        "database_id": pl.when(pl.col("d_raw") != pl.col("id")).then(pl.col("d_raw")),
    }
    return _columns(common, columns)


def _major(minor: str, currency: str) -> pl.Expr:
    """'2.50 USD': money in text, as alerts show it. Per row in Python, on a few flagged rows only,
    so that the one formatting rule (`money.format_major`) serves everything. Polars may call it
    on rows the class's filter drops, so a missing side gives null."""

    def text(row: dict) -> str | None:
        return (
            None
            if row[minor] is None or row[currency] is None
            else format_major(row[minor], row[currency])
        )

    return pl.struct(minor, currency).map_elements(text, return_dtype=pl.String, skip_nulls=False)


@cache
def _per_class(refunds_tracked: bool, include_refunds: bool) -> list[tuple[pl.Expr, list[pl.Expr]]]:
    """(which flagged rows, their finding columns) for each class, in any order. Built once per
    pair of settings: the ~250 expressions cost ~2 ms to build, as much as a small day's query."""
    # Without a refunded column, an amount mismatch may just be a refund: say so.
    refund_hint = pl.lit("")
    if not refunds_tracked:
        hint = pl.format("Stripe shows {} refunded", _major("s_refunded", "s_currency"))
        refund_hint = pl.when(pl.col("s_refunded") > 0).then(hint).otherwise(refund_hint)
    # A refund mismatch is money at stake only when refunds are compared and the amount mismatch
    # of the same payment has not already counted it.
    refund_at_stake = pl.when(pl.lit(include_refunds) & ~pl.col("amount_mismatches")).then(
        S_AMT - D_AMT
    )
    missing_db, missing_stripe = pl.col("missing_in_database"), pl.col("missing_in_stripe")
    across_db, across_stripe = (
        pl.col("nd_found").fill_null(False),
        pl.col("ns_found").fill_null(False),
    )
    return [
        (
            missing_db & across_db,
            _finding(
                "timing_differences",
                stripe_amount=S_AMT,
                database_amount=pl.col("nd_amount"),
                database_created=pl.col("nd_created"),
                database_status=pl.col("nd_status"),
                detail=pl.lit("recorded in the database on the neighbouring day"),
            ),
        ),
        (
            missing_stripe & across_stripe,
            _finding(
                "timing_differences",
                stripe_amount=pl.col("ns_amount"),
                database_amount=D_AMT,
                stripe_created=pl.col("ns_created"),
                stripe_status=pl.col("ns_status"),
                detail=pl.lit("created in Stripe on the neighbouring day"),
            ),
        ),
        (
            missing_db & ~across_db,
            _finding("missing_in_database", stripe_amount=S_AMT, difference=S_AMT),
        ),
        (
            missing_stripe & ~across_stripe,
            _finding("missing_in_stripe", database_amount=D_AMT, difference=-D_AMT),
        ),
        # `difference` holds the Stripe amount left unmatched in Stripe's currency (for ranking);
        # the database amount counts in the database's currency (see `gross_by_currency`).
        (
            pl.col("currency_mismatches"),
            _finding(
                "currency_mismatches",
                stripe_amount=S_AMT,
                database_amount=D_AMT,
                difference=S_AMT,
                stripe_currency=pl.col("s_currency"),
                database_currency=pl.col("d_currency"),
            ),
        ),
        (
            pl.col("status_mismatches"),
            _finding(
                "status_mismatches",
                stripe_amount=S_AMT,
                database_amount=D_AMT,
                difference=S_AMT - D_AMT,
                detail=pl.when("s_paid")
                .then(pl.lit("Stripe collected it"))
                .when((pl.col("s_status") == "succeeded") & ~pl.col("s_captured"))
                .then(pl.lit("authorized, not captured"))
                .otherwise(pl.lit("the database counts it as paid")),
            ),
        ),
        (
            pl.col("amount_mismatches"),
            _finding(
                "amount_mismatches",
                stripe_amount=S_AMT,
                database_amount=D_AMT,
                difference=S_AMT - D_AMT,
                stripe_refunded=pl.col("s_refunded"),
                detail=refund_hint,
            ),
        ),
        (
            pl.col("refund_mismatches"),
            _finding(
                "refund_mismatches",
                stripe_amount=S_AMT,
                database_amount=D_AMT,
                difference=refund_at_stake.otherwise(0),
                stripe_refunded=pl.col("s_refunded"),
                database_refunded=pl.col("d_refunded"),
            ),
        ),
        (
            pl.col("duplicates_in_database"),
            _finding(
                "duplicates_in_database",
                stripe_amount=S_AMT,
                database_amount=D_AMT + pl.col("d_extra"),
                difference=-pl.col("d_extra"),
                database_count=pl.col("d_count"),
                currency=pl.col("d_currency"),
            ),
        ),
    ]


def _across(
    frame: pl.DataFrame | None,
    schema: pl.Schema,
    ids: pl.Series,
    prefix: str,
    amount: str,
    created: str,
) -> pl.DataFrame:
    """The earliest counterpart of each id in `frame` (ties broken on every column: order-free)."""
    if frame is not None:
        frame = conform(frame, schema, "neighbour")
    if frame is None or frame.is_empty() or ids.is_empty():  # most days: nothing to look up
        return pl.DataFrame(
            schema={
                "id": schema["id"],
                f"{prefix}_amount": schema[amount],
                f"{prefix}_created": schema[created],
                f"{prefix}_status": schema["status"],
                f"{prefix}_found": pl.Boolean(),
            }
        )
    frame = frame.filter(pl.col("invalid_reason").is_null() & pl.col("id").is_not_null())
    rows = (
        frame.filter(pl.col("id").is_in(ids.implode()))
        .sort(frame.columns)
        .unique("id", keep="first", maintain_order=True)
    )
    return rows.select(
        "id",
        **{
            f"{prefix}_amount": pl.col(amount),
            f"{prefix}_created": pl.col(created),
            f"{prefix}_status": pl.col("status"),
            f"{prefix}_found": pl.lit(True),
        },
    )


def _disputes(charges: pl.DataFrame, recorded: list[str]) -> pl.LazyFrame:
    """One finding per disputed charge of the window. A lost dispute took its amount back: that is
    money at stake, unless the payments table recorded the chargeback (`recorded`, see
    `sides.with_recorded_chargebacks`); an open one is money at risk (see `dispute_totals`); a won
    one is listed only."""
    status = pl.col("dispute_status")
    amount = pl.coalesce("dispute_amount", "amount_captured")
    is_recorded = pl.col("id").is_in(recorded)
    reason = pl.coalesce(
        pl.format("{}: {}", status, pl.col("dispute_reason")),
        status,
        pl.lit("Stripe marks the charge disputed; the Disputes API returned no dispute"),
    )
    reason = (
        pl.when(is_recorded)
        .then(pl.format("{}; the chargeback is recorded in the payments table", reason))
        .otherwise(reason)
    )
    counted = (status == "lost") & ~is_recorded
    # Filtered eagerly and made one chunk before any string function runs: Polars 2.1's streaming
    # engine can panic ("i < self.len()") on string expressions over multi-chunk input, such as a
    # range's days concatenated.
    return (
        charges.filter(pl.col("disputed") | pl.col("dispute_id").is_not_null())
        .rechunk()
        .lazy()
        .select(
            _columns(
                {
                    "kind": pl.lit("disputes"),
                    "payment_id": pl.col("id"),
                    "currency": pl.col("currency"),
                    "stripe_amount": amount,
                    "difference": pl.when(counted).then(amount).otherwise(0),
                    "stripe_status": pl.col("status"),
                    "stripe_created": pl.col("created"),
                    "detail": reason,
                    "dispute_id": pl.col("dispute_id"),
                    "dispute_status": status,
                },
                {},
            )
        )
    )


def _invalid_rows(invalid: pl.DataFrame) -> pl.LazyFrame:
    """Rows a source could not read, or whose id is of no payment kind: listed, never reconciled."""
    from_stripe = pl.col("source") == "stripe"
    return (
        invalid.rechunk()
        .lazy()
        .select(
            _columns(
                {
                    "kind": pl.lit("invalid_rows"),
                    "payment_id": pl.col("id").fill_null(""),
                    "currency": pl.col("currency").fill_null(""),
                    "difference": pl.lit(0),
                    "stripe_created": pl.when(from_stripe).then(pl.col("created")),
                    "database_created": pl.when(~from_stripe).then(pl.col("created")),
                    "detail": pl.col("reason"),
                    "source": pl.col("source"),
                    "column": pl.col("column"),
                },
                {},
            )
        )
    )


def build_findings(
    flagged: pl.DataFrame,
    params: ReconcileParams,
    neighbour_charges: pl.DataFrame | None,
    neighbour_payments: pl.DataFrame | None,
    *,
    charges: pl.DataFrame | None = None,
    invalid: pl.DataFrame | None = None,
    recorded_chargebacks: list[str] | None = None,
) -> pl.DataFrame:
    """The findings of the flagged rows (and of the window's disputes and invalid rows) as a frame
    in `FINDING_SCHEMA`, in report order.

    Report order: by class, then by money at stake (largest first), then by payment id; rows with
    no id (invalid rows) then by where and when they come from, so that the order never depends on
    the sort's threads or the rows' order.
    """
    stripe_only = flagged.filter("missing_in_database")
    db_only = flagged.filter("missing_in_stripe").get_column("id")
    rows = (
        flagged.rechunk()
        .join(_across_table(neighbour_payments, stripe_only), on="id", how="left")
        .join(
            _across(
                _by_intent_too(neighbour_charges),
                CHARGES_SCHEMA,
                db_only,
                "ns",
                "amount_captured",
                "created",
            ),
            on="id",
            how="left",
        )
        .lazy()
    )
    order = pl.col("kind").replace_strict(
        {kind: i for i, kind in enumerate(CLASSES)}, return_dtype=pl.UInt8
    )
    # One query for every class: Polars runs the per-class selects together. Parts that can have
    # no row are left out: planning the query costs more than running it on a small day.
    parts = []
    if not flagged.is_empty():
        parts += [
            rows.filter(which).select(columns)
            for which, columns in _per_class(params.refunds_tracked, params.include_refunds)
        ]
    if charges is not None:
        parts.append(_disputes(charges, recorded_chargebacks or []))
    if invalid is not None and not invalid.is_empty():
        parts.append(_invalid_rows(invalid))
    if not parts:
        return pl.DataFrame(schema=FINDING_SCHEMA)
    findings = pl.concat(parts)
    return findings.sort(
        order, pl.col("difference").abs(), *_TIES, descending=[False, True] + [False] * len(_TIES)
    ).collect()


# After the money at stake: the payment id, then, for the rows that share it (invalid rows with no
# id), every field that tells them apart.
_TIES = (
    "payment_id",
    "source",
    "column",
    "stripe_created",
    "database_created",
    "detail",
    "currency",
)


def _by_intent_too(charges: pl.DataFrame | None) -> pl.DataFrame | None:
    """Neighbour charges findable by their id and by their PaymentIntent id (a `pi_` row's
    look-up)."""
    if charges is None:
        return None
    charges = conform(charges, CHARGES_SCHEMA, "neighbour")
    by_intent = charges.filter(pl.col("payment_intent").is_not_null()).with_columns(
        id=pl.col("payment_intent")
    )
    return pl.concat([charges, by_intent])


def _across_table(payments: pl.DataFrame | None, unmatched: pl.DataFrame) -> pl.DataFrame:
    """Neighbour payment rows of the charges missing from the table, by charge id or intent id."""
    aliases = unmatched.filter(pl.col("s_intent").is_not_null()).select(
        alias="s_intent", charge="id"
    )
    ids = pl.concat([unmatched.get_column("id"), aliases.get_column("alias")])
    if payments is not None and not aliases.is_empty():
        payments = conform(payments, PAYMENTS_SCHEMA, "neighbour")
        mapped = payments.join(aliases, left_on="id", right_on="alias", how="left")
        payments = mapped.with_columns(id=pl.coalesce("charge", "id")).select(payments.columns)
    return _across(payments, PAYMENTS_SCHEMA, ids, "nd", "amount", "created_at")


def dispute_totals(findings: pl.DataFrame) -> dict[str, tuple[int, int]]:
    """Per currency: (lost, open) dispute amounts."""
    disputes = findings.filter(pl.col("kind") == "disputes")
    if disputes.is_empty():
        return {}
    status = pl.col("dispute_status")
    sums = disputes.group_by("currency").agg(
        lost=pl.col("stripe_amount").filter(status == "lost").sum(),
        open=pl.col("stripe_amount").filter(status.is_in(list(OPEN_DISPUTES))).sum(),
    )
    return {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in sums.iter_rows()}


def gross_by_currency(findings: pl.DataFrame, foreign_extras: pl.DataFrame) -> dict[str, int]:
    """Sum of |money at stake| per currency, so that errors which offset each other still show.

    A currency mismatch counts both amounts, each in its own currency; duplicate rows recorded in
    another currency than the payment's count in theirs (`foreign_extras`); a lost dispute counts
    its amount.
    """
    stakes = pl.concat(
        [
            findings.filter(~pl.col("kind").is_in(list(REPORT_ONLY))).select(
                "currency", amount=pl.col("difference").abs()
            ),
            findings.filter(pl.col("kind") == "currency_mismatches").select(
                currency="database_currency", amount=pl.col("database_amount").abs()
            ),
            foreign_extras.select("currency", amount=pl.col("amount").abs()),
        ]
    )
    return dict(stakes.group_by("currency").agg(pl.col("amount").sum()).iter_rows())
