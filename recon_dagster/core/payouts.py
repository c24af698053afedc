"""Payout reconciliation: is each payout made of what Stripe says, and did it reach the bank?

For every payout arriving in [first, last]:

1. Itemization (automatic payouts only): the net of the balance transactions it paid out, its own
   `payout` transaction left out, must equal its amount. The net is split into charges, refunds,
   disputes, fees and adjustments, which add up to it (one group_by over the transactions).
2. Charges: each charge it paid out must be in the payments table, under its charge id or its
   PaymentIntent id, and for the same amount when the rows are in the transaction's currency
   (merge joins on sorted id hashes, every match checked on the id text: `_Payments`).
3. Bank: one deposit of the same amount and currency, dated arrival_date .. arrival_date +
match_days.

Bank matching rule. Every (payout, deposit) pair that fits is ranked: a deposit whose reference
contains the payout id or its trace id (case-insensitive) first; then the nearest date; then the
smallest deposit id (then the payout id, so that the order is total). Pairs are taken greedily in
that order, each payout and each deposit at most once, over every payout given: the earlier
context payouts too, so that their late deposits are not taken for the window's own nor reported
as deposits without payout. Greedy, not a maximum matching: a payout whose only deposit is the
better fit of another payout is reported missing, which needs two payouts of one amount and
currency within match_days of each other. The pass runs in vectorised rounds (`_greedy`), with
the same answer as one pair at a time.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from recon_dagster.core.frames import conform
from recon_dagster.core.ids import id_hash
from recon_dagster.core.payout_frames import (
    BANK_SCHEMA,
    FAILED_STATUSES,
    PAYMENT_ROWS_SCHEMA,
    PAYOUT_TRANSACTIONS_SCHEMA,
    PAYOUTS_SCHEMA,
    empty_bank,
)
from recon_dagster.core.payout_result import (
    ITEMIZED,
    MANUAL_NOTE,
    PROBLEMS,
    Deposit,
    PayoutLine,
    PayoutResult,
)

CATEGORY = pl.col("reporting_category")
# reporting_category -> component; every other category is an adjustment.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "charges": ("charge",),
    "refunds": ("refund", "refund_failure"),
    "disputes": ("dispute", "dispute_reversal"),
    "fee_category": ("fee",),
}
KNOWN_CATEGORIES = tuple(c for cats in COMPONENTS.values() for c in cats)
# Row numbers packed under the id hashes' high half (`_sorted_keys`): frames up to 4G rows.
ROW_SPAN = 1 << 32
# A payout line's itemization: what its transactions net to, the difference, and by type.
ITEMIZATION = ("itemized_net", "difference", *ITEMIZED)


def reconcile_payouts(
    payouts: pl.DataFrame,
    transactions: pl.DataFrame,
    payments: pl.DataFrame,
    bank: pl.DataFrame | None,
    *,
    first: date,
    last: date,
    as_of: date,
    match_days: int = 3,
    bank_configured: bool = True,
    reference_configured: bool = True,
) -> PayoutResult:
    """Reconcile the payouts arriving in [first, last] (see the module docstring).

    `payouts` may also hold payouts arriving up to `match_days` before `first`: they are not
    reported, but claim their deposits. `bank` is ignored (and may be None) unless
    `bank_configured`. With `reference_configured`, only deposits whose reference says "stripe"
    can be reported as deposits without payout (the others are the business's other income).
    Raises ValueError on frames that lack a column or have other types, or repeat a payout id.
    """
    if last < first:
        raise ValueError(f"last ({last}) is before first ({first})")
    if match_days < 0:
        raise ValueError(f"match_days must be >= 0, got {match_days}")
    if bank_configured and bank is None:
        raise ValueError("bank_configured, but no bank frame given")
    payouts = conform(payouts, PAYOUTS_SCHEMA, "payouts").sort("id")
    if payouts.get_column("id").is_duplicated().any():
        raise ValueError("payouts frame has duplicate ids")
    reported = payouts.filter(pl.col("arrival_date").is_between(first, last))
    itemized_ids = reported.filter("automatic").get_column("id").implode()
    lines = reported.lazy()
    own = _own(transactions, itemized_ids)
    itemized = _itemize(own).collect(
        background=True
    )  # on Polars' threads, while the charges are checked
    checks = _charge_checks(own, payments)
    lines = lines.join(itemized.fetch_blocking().lazy(), on="id", how="left").join(
        checks, on="id", how="left"
    )
    deposits = _deposits(bank if bank_configured and bank is not None else empty_bank())
    claims = _greedy(_pairs(payouts, deposits, match_days))
    lines = lines.join(
        claims.lazy().select("id", bank_deposit_id="deposit_id"), on="id", how="left"
    )
    unclaimed = deposits.join(claims.lazy(), on="d", how="anti").filter(
        pl.col("date").is_between(first, last)
    )
    if reference_configured:
        unclaimed = unclaimed.filter(
            pl.col("reference").str.to_lowercase().str.contains("stripe", literal=True)
        )
    lines = _problems(lines, as_of=as_of, match_days=match_days, bank_configured=bank_configured)
    return PayoutResult(
        first=first,
        last=last,
        as_of=as_of,
        match_days=match_days,
        bank_checked=bank_configured,
        payouts=tuple(
            _line(row) for row in lines.sort("arrival_date", "id").collect().iter_rows(named=True)
        ),
        deposits_without_payout=tuple(
            Deposit(**row)
            for row in unclaimed.sort("date", "id", "d").drop("d").collect().iter_rows(named=True)
        ),
    )


# -- itemization ---------------------------------------------------------------------------------
def _own(transactions: pl.DataFrame, payout_ids: pl.Series) -> pl.LazyFrame:
    """The balance transactions of the itemized payouts, each payout's own transaction left out
    (type `payout` with the payout as its source, or no source); a `payout`-type row naming
    another payout is money in this one and stays (as an adjustment)."""
    tx = conform(transactions, PAYOUT_TRANSACTIONS_SCHEMA, "payout transactions").lazy()
    itself = (pl.col("type") == "payout") & (
        pl.col("source").is_null() | (pl.col("source") == pl.col("payout"))
    )
    return tx.filter(pl.col("payout").is_in(payout_ids) & ~itself)


def _itemize(own: pl.LazyFrame) -> pl.LazyFrame:
    """Per payout (`id`): its net, the five components, and its transaction count."""
    amount = pl.col("amount")
    known = CATEGORY.is_in(KNOWN_CATEGORIES).fill_null(False)
    sums = own.group_by("payout").agg(
        itemized_net=pl.col("net").sum(),
        **{name: amount.filter(CATEGORY.is_in(cats)).sum() for name, cats in COMPONENTS.items()},
        adjustments=amount.filter(~known).sum(),
        fee=pl.col("fee").sum(),
        transaction_count=pl.len(),
    )
    return sums.select(
        pl.col("payout").alias("id"),
        "itemized_net",
        "charges",
        "refunds",
        "disputes",
        fees=pl.col("fee_category") - pl.col("fee"),
        adjustments="adjustments",
        transaction_count="transaction_count",
    )


def _charge_checks(own: pl.LazyFrame, payments: pl.DataFrame) -> pl.LazyFrame:
    """Per payout (`id`): the sorted ids of its charges that the payments table lacks (under the
    charge id and under its PaymentIntent id), and of those whose rows' total differs.

    A charge is looked up under its own id first, then under its PaymentIntent's. The rows found
    under that id are summed in the transaction's currency; rows in other currencies only (a
    charge settled in another currency than it was made in) are not compared. Neither is a
    connected account's payment of a destination charge (its `charge` is the platform's, not its
    `source`): it is what the platform transferred, and the sale's own day compares the amount.
    A row without a `charge` is no sale of this account's (Connect: a transfer's payment, or on
    the platform a destination charge) and is not looked up.
    """
    charges = (
        own.filter(CATEGORY == "charge")
        .select(
            "payout",
            "amount",
            currency=pl.when(pl.col("charge") == pl.col("source")).then("currency"),
            charge="charge",
            intent="payment_intent",
        )
        .filter(pl.col("charge").is_not_null())
        .with_columns(h_charge=id_hash(pl.col("charge")), h_intent=id_hash(pl.col("intent")))
        .collect()
    )
    # Random gathers from one chunk are ~10x faster; `payout` is only gathered for a few rows.
    charges = charges.with_columns(
        charges.get_column(c).rechunk() for c in ("amount", "charge", "intent", "h_intent")
    )
    charges = charges.with_columns(cur=_codes(charges.get_column("currency")))
    table = _Payments(payments)
    rest, differs = table.lookup(charges, "charge")
    has_intent = charges.get_column("intent").gather(rest).is_not_null()
    unknown, differs_by_intent = table.lookup(charges, "intent", rest.filter(has_intent))
    flagged = pl.concat(
        [
            pl.select(c=pl.concat([rest.filter(~has_intent), unknown]), missing=pl.lit(True)),
            pl.select(c=pl.concat([differs, differs_by_intent]), missing=pl.lit(False)),
        ]
    )
    flagged = flagged.with_columns(
        pl.lit(charges.get_column(name)).gather("c") for name in ("payout", "charge")
    )
    return (
        flagged.lazy()
        .group_by("payout")
        .agg(
            missing_ids=pl.col("charge").filter("missing").unique().sort(),
            mismatch_ids=pl.col("charge").filter(~pl.col("missing")).unique().sort(),
        )
        .rename({"payout": "id"})
    )


def _codes(currencies: pl.Series) -> pl.Series:
    """Currencies as integers to compare: the code read as a base-36 number, one to one for
    three-letter codes (null for text that is no such number). A column of one currency, the
    usual case, costs one comparison instead of a parse per row."""
    if currencies.len() and not currencies.has_nulls() and (currencies == currencies[0]).all():
        code = currencies[:1].str.to_integer(base=36, strict=False)[0]
        return pl.repeat(code, currencies.len(), dtype=pl.Int64, eager=True)
    return currencies.str.to_integer(base=36, strict=False)


def _only(codes: pl.Series) -> int | None:
    """The one value of `codes` when they all have it (no nulls), else None: one account, one
    currency is the usual case, and then no row's currency needs a look."""
    low = codes.min()
    if codes.is_empty() or codes.has_nulls() or low != codes.max() or not isinstance(low, int):
        return None
    return low


def _sorted_keys(hashes: pl.Series, rows: pl.Series) -> pl.DataFrame:
    """(`h`: the high half of each id hash, ascending; `row`: its row, < 2**32), by sorting one
    u64 column.

    The row number is packed into the hash's low half, so one plain sort of u64 values (about
    three times faster than sorting a frame by a column) orders the keys and carries the rows.
    A 32-bit key collides more often than the full hash; that costs time only (a few thousand
    pairs at millions of rows), since every pair a key matches is checked on the text.
    """
    packed = ((hashes // ROW_SPAN) * ROW_SPAN + rows.cast(pl.UInt64)).sort()
    return pl.select(h=(packed // ROW_SPAN).set_sorted(), row=packed % ROW_SPAN)


class _Payments:
    """The payments rows, ready to look ids up in: keyed by id hash and sorted, so that a lookup
    is a merge join of two sorted u64 columns (several times faster here than a hash join on ids).

    Keys that occur once (nearly all) stay one row each (`unique`); the rows of a repeated key (an
    id with several rows, or ids that share a key) are summed per exact (id, currency) (`repeated`,
    small). Every pair a key matches is checked on the id text, so a collision never misleads.
    """

    def __init__(self, payments: pl.DataFrame) -> None:
        rows = conform(payments, PAYMENT_ROWS_SCHEMA, "payments").filter(pl.col("id").is_not_null())
        rows = rows.select("id", "amount", "currency", h=id_hash(pl.col("id"))).rechunk()
        rows = rows.with_columns(cur=_codes(rows.get_column("currency")))
        self.ids, self.amounts, self.curs = (
            rows.get_column("id"),
            rows.get_column("amount"),
            rows.get_column("cur"),
        )
        self.one_currency = _only(self.curs)
        keyed = _sorted_keys(
            rows.get_column("h"), pl.int_range(rows.height, dtype=pl.UInt64, eager=True)
        )
        keyed = keyed.rename({"row": "p"})
        h = pl.col("h")
        repeated = ((h == h.shift(1)) | (h == h.shift(-1))).fill_null(False)
        self.unique = keyed.filter(~repeated)
        p = keyed.filter(repeated).get_column("p")
        self.repeated = (
            keyed.filter(repeated)
            .with_columns(
                id=self.ids.gather(p), p_cur=self.curs.gather(p), p_amount=self.amounts.gather(p)
            )
            .group_by("h", "id", "p_cur")
            .agg(pl.col("p_amount").sum())
        )

    def lookup(
        self, charges: pl.DataFrame, column: str, rows: pl.Series | None = None
    ) -> tuple[pl.Series, pl.Series]:
        """Look up `charges[column]` at `rows` (indices into `charges`, which has `amount`, `cur`
        and `h_<column>`; None: every row): (the rows whose id no payment row has, the rows whose
        payment rows' total in the charge's currency differs from the charge's amount)."""
        hashes = charges.get_column(f"h_{column}")
        if rows is None:
            rows = pl.int_range(charges.height, dtype=pl.UInt64, eager=True)
        else:
            hashes = hashes.gather(rows)
        if self.ids.is_empty():
            return rows.alias("c"), rows.clear().alias("c")
        keys = _sorted_keys(hashes, rows).rename({"row": "c"})
        joined = keys.join(self.unique, on="h", how="left")
        hit = pl.col("p").is_not_null()
        missed, joined = joined.filter(~hit), joined.filter(hit)

        def of_charge(name: str) -> pl.Expr:
            return pl.lit(charges.get_column(name)).gather("c")

        def of_payment(values: pl.Series) -> pl.Expr:
            return pl.lit(values).gather("p")

        one = _only(charges.get_column("cur"))
        same = of_payment(self.curs) == of_charge("cur")
        if one is not None and one == self.one_currency:
            same = pl.lit(True)
        # One select, so that the text check (the costly part) and the amounts can run in parallel.
        joined = joined.select(
            "c",
            "h",
            same_id=of_charge(column) == of_payment(self.ids),
            differs=(same & (of_payment(self.amounts) != of_charge("amount"))).fill_null(False),
        )
        unfound = pl.concat(
            [missed.select("c", "h"), joined.filter(~pl.col("same_id")).select("c", "h")]
        )
        differ = joined.filter(pl.col("same_id") & pl.col("differs")).get_column("c")
        if self.repeated.is_empty():
            return unfound.get_column("c"), differ
        # Keys in `repeated` are never in `unique`, so their rows are among the unfound ones.
        # (Gathers stay out of `agg`: a literal there would be copied into every group.)
        hits = (
            unfound.select("c", "h")
            .join(self.repeated, on="h")
            .with_columns(text=of_charge(column), amount=of_charge("amount"), cur=of_charge("cur"))
            .filter(pl.col("text") == pl.col("id"))
            .group_by("c")
            .agg(
                pl.col("amount").first(),
                total=pl.col("p_amount").filter(pl.col("p_cur") == pl.col("cur")).first(),
            )
        )
        unfound = unfound.get_column("c").filter(
            ~unfound.get_column("c").is_in(hits.get_column("c").implode())
        )
        return unfound, pl.concat(
            [differ, hits.filter(pl.col("total") != pl.col("amount")).get_column("c")]
        )


# -- the bank ------------------------------------------------------------------------------------
def _deposits(bank: pl.DataFrame) -> pl.LazyFrame:
    """The deposits, numbered (`d`) in an order that does not depend on the frame's row order."""
    lines = conform(bank, BANK_SCHEMA, "bank").lazy().filter(pl.col("amount") > 0)
    return lines.sort(list(BANK_SCHEMA), nulls_last=True).with_row_index("d")


def _pairs(payouts: pl.DataFrame, deposits: pl.LazyFrame, match_days: int) -> pl.LazyFrame:
    """Every (payout, deposit) pair that may match, ranked (`rank`, 0 is best) by the rule above."""
    paid = payouts.lazy().filter(~pl.col("status").is_in(FAILED_STATUSES))
    pairs = paid.select("id", "amount", "currency", "arrival_date", "trace_id").join(
        deposits.select("d", "amount", "currency", "date", "reference", deposit_id="id"),
        on=["amount", "currency"],
    )
    arrival = pl.col("arrival_date")
    pairs = pairs.filter(pl.col("date").is_between(arrival, arrival + timedelta(days=match_days)))
    reference = pl.col("reference").str.to_lowercase()

    def named(what: pl.Expr) -> pl.Expr:
        return (what.str.len_chars() > 0) & reference.str.contains(
            what.str.to_lowercase(), literal=True
        )

    by_reference = (named(pl.col("id")) | named(pl.col("trace_id"))).fill_null(False)
    distance = (pl.col("date") - arrival).dt.total_days()
    return pairs.sort(~by_reference, distance, "deposit_id", "d", "id").with_row_index("rank")


def _greedy(pairs: pl.LazyFrame) -> pl.DataFrame:
    """The greedy pass over the ranked pairs, as (`id`, `deposit_id`, `d`).

    Taking pairs one at a time in rank order gives the same pairs as taking, in rounds, every pair
    ranked first both among its payout's pairs and among its deposit's, then dropping the pairs
    that share a payout or a deposit with a taken one. The one-at-a-time pass takes such a pair
    too (no better pair competes for its payout or its deposit), and what it does with the rest
    no longer depends on the dropped pairs. The globally best pair is always taken, so every
    round takes one at least; a round is a few vectorised expressions, and there are seldom
    more than two.
    """
    left = pairs.select("rank", "id", "deposit_id", "d").collect()
    taken = []
    while left.height:
        rank = pl.col("rank")
        best = left.filter((rank == rank.min().over("id")) & (rank == rank.min().over("d")))
        taken.append(best)
        done = pl.col("id").is_in(best.get_column("id").implode()) | pl.col("d").is_in(
            best.get_column("d").implode()
        )
        left = left.filter(~done)
    return pl.concat(taken).drop("rank") if taken else left.drop("rank")


# -- problems and the result ---------------------------------------------------------------------
def _problems(
    lines: pl.LazyFrame, *, as_of: date, match_days: int, bank_configured: bool
) -> pl.LazyFrame:
    """One boolean column per problem code, with the itemization filled in (0) or voided
    (manual)."""
    automatic = pl.col("automatic")
    # An automatic payout without transactions is itemized as 0; a manual one is not itemized.
    sums = ("itemized_net", *ITEMIZED, "transaction_count")
    lines = lines.with_columns(
        pl.when(automatic).then(pl.col(c).fill_null(0)) for c in sums
    ).with_columns(
        difference=pl.col("amount") - pl.col("itemized_net"),
        transaction_count=pl.col("transaction_count").fill_null(0),
    )
    failed = pl.col("status").is_in(FAILED_STATUSES)
    unmatched = pl.lit(bank_configured) & ~failed & pl.col("bank_deposit_id").is_null()
    due = pl.col("arrival_date") + timedelta(days=match_days) <= as_of
    return lines.with_columns(
        failed=failed,
        itemization_mismatch=automatic & (pl.col("difference") != 0),
        charges_missing_in_database=pl.col("missing_ids").list.len().fill_null(0) > 0,
        charge_amount_mismatch=pl.col("mismatch_ids").list.len().fill_null(0) > 0,
        missing_in_bank=unmatched & due,
        awaiting_bank=unmatched & ~due,
    )


def _line(row: dict) -> PayoutLine:
    return PayoutLine(
        id=row["id"],
        amount=row["amount"],
        currency=row["currency"],
        arrival_date=row["arrival_date"],
        status=row["status"],
        automatic=row["automatic"],
        failure_code=row["failure_code"],
        trace_id=row["trace_id"],
        **{name: row[name] for name in ITEMIZATION},
        transaction_count=row["transaction_count"],
        charges_missing_in_database=tuple(row["missing_ids"] or ()),
        charges_amount_mismatch=tuple(row["mismatch_ids"] or ()),
        bank_deposit_id=row["bank_deposit_id"],
        problems=tuple(code for code in PROBLEMS if row[code]),
        note=None if row["automatic"] else MANUAL_NOTE,
    )
