"""Each side of the comparison in the core's terms: was money collected, how much, net of refunds.

Stripe columns are prefixed `s_`, database columns `d_`; both carry `h`, the id's u64 key
(`ids.id_hash`), and `s_ccy` / `d_ccy`, the currency's. The database side is also collapsed to
one row per id, so that a payment recorded twice is one duplicate finding rather than two
matches.
"""

from __future__ import annotations

import polars as pl

from recon_dagster.core.ids import duplicated, id_hash
from recon_dagster.core.result import ReconcileParams

# Statuses, timestamps and currency codes are needed only for findings (and, on the database
# side, to choose a duplicate's representative): they stay out of the join, which is narrower for
# it (the join compares the currencies' u64 keys), and `with_details` gathers them for the flagged
# rows by `s_row` / `d_row`, each row's position.
STRIPE_DETAILS: tuple[str, ...] = ("s_currency",)
DATABASE_DETAILS: tuple[str, ...] = ("d_status", "d_created", "d_raw", "d_currency")

# A database row in one of these statuses took the money and gave all of it back: it counts as
# paid, and when no refunded column is configured its refunded amount is its whole amount.
REFUNDED_STATUSES: tuple[str, ...] = ("refunded",)


def currency_key(currency: pl.Series) -> pl.Expr:
    """The currency codes' u64 keys (null where the code is): comparing them in the join is
    cheaper than comparing the text. They are exact only while no two codes of the day share a
    key, which `keys_tell_apart` checks on the day's few distinct codes."""
    key = id_hash(pl.col(currency.name))
    return pl.when(pl.col(currency.name).is_not_null()).then(key) if currency.has_nulls() else key


def keys_tell_apart(*totals: pl.DataFrame) -> bool:
    """No two of the day's currency codes (the first column of each side's totals: a handful)
    share a key, so that comparing keys is comparing codes."""
    codes = pl.concat([frame.select(code=pl.nth(0)) for frame in totals]).unique()
    keys = codes.select(currency_key(codes.get_column("code"))).to_series()
    return keys.n_unique() == codes.height


def stripe_side(charges: pl.DataFrame, include_refunds: bool) -> pl.DataFrame:
    # Money was collected only by a succeeded, captured charge; an authorisation is not money.
    collected = (pl.col("status") == "succeeded") & pl.col("paid") & pl.col("captured")
    net = pl.col("amount_captured") - (pl.col("amount_refunded") if include_refunds else pl.lit(0))
    return charges.select(
        h=id_hash(pl.col("id")),
        s_row=pl.int_range(pl.len(), dtype=pl.UInt32),
        s_id=pl.col("id"),
        s_currency=pl.col("currency"),
        s_ccy=currency_key(charges.get_column("currency")),
        s_paid=collected,
        s_gross=pl.col("amount_captured"),
        s_refunded=pl.col("amount_refunded"),
        s_amt=pl.when(collected).then(net).otherwise(0),
    )


def with_recorded_chargebacks(
    stripe: pl.DataFrame, charges: pl.DataFrame, database: pl.DataFrame, include_refunds: bool
) -> tuple[pl.DataFrame, list[str]]:
    """Lost disputes the payments table has recorded: its one row for the charge has Stripe's
    refunds plus the dispute as its refunded amount (or a `refunded` status). Both sides then agree
    the money is gone, so Stripe's side (`stripe`, made from `charges`) takes it back as well
    (refunded, and the net when refunds are compared) and the dispute is listed, not counted
    again. A charge recorded twice is left as it is (its duplicate is a finding anyway). Returns
    the side and those charges' ids.

    Lost disputes are few, and so are refunded rows: only those are looked at, never a table
    joined."""
    at = charges.select(pl.arg_where(pl.col("dispute_status") == "lost")).to_series()
    if at.is_empty():
        return stripe, []
    lost = (
        stripe.select("s_row", "h", "s_id", "s_currency", "s_paid", "s_refunded")[at]
        .with_columns(
            s_lost=charges[at].select(pl.coalesce("dispute_amount", "amount_captured")).to_series()
        )
        .filter("s_paid")
    )
    # A recorded chargeback has a refunded amount; the cheap test first, the hashes on what is left.
    refunded = database.filter(pl.col("d_refunded") > 0).filter(
        pl.col("h").is_in(lost.get_column("h").implode())
    )
    if refunded.is_empty():
        return stripe, []
    # Every row of those charges, refunded or not: a charge recorded twice is not settled by one
    # row.
    rows = database.filter(pl.col("h").is_in(refunded.get_column("h").implode())).select(
        "h", "d_id", "d_paid", "d_currency", "d_refunded"
    )
    rows = rows.filter(pl.len().over("d_id") == 1)
    recorded = (
        lost.join(rows, on="h")
        .filter(
            (pl.col("s_id") == pl.col("d_id"))
            & pl.col("d_paid")
            & (pl.col("s_currency") == pl.col("d_currency"))
            & (pl.col("d_refunded") == pl.col("s_refunded") + pl.col("s_lost"))
        )
        .select("s_row", "s_id", "s_lost")
    )
    if recorded.is_empty():
        return stripe, []
    taken = (
        stripe.select("s_row")
        .join(recorded.select("s_row", "s_lost"), on="s_row", how="left")
        .get_column("s_lost")
        .fill_null(0)
    )
    return stripe.with_columns(
        s_refunded=pl.col("s_refunded") + taken,
        s_amt=pl.when(pl.col("s_paid") & pl.lit(include_refunds))
        .then(pl.col("s_amt") - taken)
        .otherwise(pl.col("s_amt")),
    ), recorded.get_column("s_id").to_list()


def _spellings(statuses: pl.Series, wanted: tuple[str, ...]) -> list[str]:
    """The statuses in the column that are `wanted` in any letter case.

    Statuses are matched case-insensitively, but lower-casing a million strings costs more than
    the rest of the side; a day has a handful of distinct statuses, so they are matched instead.
    """
    lowered = {s.lower() for s in wanted}
    return [s for s in statuses.to_list() if s is not None and s.lower() in lowered]


def _one_of(spellings: list[str]) -> pl.Expr:
    """`status` is one of `spellings`: a day has a handful, and comparing a few literals is about
    twice as fast as a hash look-up per row (`is_in`), which a longer list still gets."""
    if not spellings or len(spellings) > 4:
        return pl.col("status").is_in(spellings)
    return pl.any_horizontal(pl.col("status") == s for s in spellings)


def database_side(payments: pl.DataFrame, params: ReconcileParams) -> pl.DataFrame:
    """The rows in the core's terms; `payments` carries `key`, the charge each row stands for
    (`keys.keyed`; without it, its id), which is what the join and the duplicate collapse go by."""
    key = pl.col("key") if "key" in payments.columns else pl.col("id")
    statuses = payments.lazy().select(pl.col("status").unique()).collect().to_series()
    refunded_spellings = _spellings(statuses, REFUNDED_STATUSES)
    paid_spellings = _spellings(statuses, params.paid_statuses)
    # Only the spellings some row has: most days have no `refunded` row, so no test at all.
    refunded_status = _one_of(refunded_spellings) if refunded_spellings else pl.lit(False)
    paid = _one_of(paid_spellings + refunded_spellings)
    refunded = pl.when(pl.col("refunded").is_not_null()).then(pl.col("refunded"))
    refunded = refunded.when(refunded_status & pl.lit(not params.refunds_tracked)).then(
        pl.col("amount")
    )
    refunded = refunded.otherwise(0)
    net = pl.col("amount") - (refunded if params.include_refunds else pl.lit(0))
    # Eagerly: the streaming engine ran this select in ~9 ms against ~12, but left the core's
    # peak ~45 MiB higher on a 1M-row day with Stripe-length ids (its frame comes in ten chunks).
    return payments.select(
        h=id_hash(key),
        d_row=pl.int_range(pl.len(), dtype=pl.UInt32),
        d_id=key,
        d_raw=pl.col("id"),
        d_currency=pl.col("currency"),
        d_ccy=currency_key(payments.get_column("currency")),
        d_status=pl.col("status"),
        d_paid=paid,
        d_gross=pl.col("amount"),
        d_refunded=refunded,
        d_amt=pl.when(paid).then(net).otherwise(0),
        d_created=pl.col("created_at"),
    )


def collapse_duplicates(db: pl.DataFrame) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """One row per id: the earliest row stands for the payment, the others are extra.

    Returns the collapsed side (`d_count` rows, `d_extra`: extra money in the payment's own
    currency) and the extra rows recorded in another currency, as (`currency`, `amount`).
    """
    dup = duplicated(db.get_column("d_id"), db.get_column("h"))
    singles = db.lazy().with_columns(d_count=pl.lit(1, pl.UInt32), d_extra=pl.lit(0, pl.Int64))
    foreign = pl.DataFrame(schema={"currency": pl.String, "amount": pl.Int64})
    if not dup.any():
        return singles, foreign
    # Sorting on every column makes the representative independent of the input row order.
    rows = db.filter(dup).sort(
        ["d_id", "d_created", "d_gross", "d_status", "d_currency", "d_refunded", "d_raw"]
    )
    rows = rows.with_columns(
        first=pl.int_range(pl.len()).over("d_id") == 0,
        rep_currency=pl.col("d_currency").first().over("d_id"),
    )
    same = pl.col("d_currency") == pl.col("rep_currency")
    collapsed = rows.group_by("d_id", maintain_order=True).agg(
        pl.all().exclude("first", "rep_currency").first(),
        d_count=pl.len(),
        d_extra=pl.col("d_amt").filter(~pl.col("first") & same).sum(),
    )
    foreign = rows.filter(~pl.col("first") & ~same & (pl.col("d_amt") != 0)).select(
        currency="d_currency", amount="d_amt"
    )
    names = singles.collect_schema().names()  # the representative keeps its own d_row
    return pl.concat(
        [singles.filter(pl.lit(~dup)), collapsed.lazy().select(names)], how="vertical"
    ), foreign


def with_details(
    flagged: pl.DataFrame, charges: pl.DataFrame, database: pl.DataFrame
) -> pl.DataFrame:
    """The flagged rows with both sides' statuses, timestamps and currencies (null where a side is
    missing)."""
    s_rows, d_rows = flagged.get_column("s_row"), flagged.get_column("d_row")
    return flagged.with_columns(
        s_currency=charges.get_column("currency").gather(s_rows),
        d_currency=database.get_column("d_currency").gather(d_rows),
        s_status=charges.get_column("status").gather(s_rows),
        s_captured=charges.get_column("captured").gather(s_rows),
        s_intent=charges.get_column("payment_intent").gather(s_rows),
        s_created=charges.get_column("created").gather(s_rows),
        d_status=database.get_column("d_status").gather(d_rows),
        d_created=database.get_column("d_created").gather(d_rows),
        d_raw=database.get_column("d_raw").gather(d_rows),
    )
