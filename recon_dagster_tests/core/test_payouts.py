"""Payout reconciliation on small frames: one behaviour per test."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from recon_dagster.core.payout_frames import (
    BANK_SCHEMA,
    PAYMENT_ROWS_SCHEMA,
    PAYOUT_TRANSACTIONS_SCHEMA,
    PAYOUTS_SCHEMA,
    empty_bank,
    empty_payment_rows,
    empty_payout_transactions,
    empty_payouts,
)
from recon_dagster.core.payout_result import MANUAL_NOTE, PayoutResult
from recon_dagster.core.payouts import reconcile_payouts

FIRST, LAST = date(2024, 3, 1), date(2024, 3, 31)
CREATED = datetime(2024, 2, 28, tzinfo=UTC)
_ids = itertools.count(1)


def payout(
    id: str,
    amount: int,
    arrival: date = date(2024, 3, 5),
    *,
    currency: str = "USD",
    status: str = "paid",
    automatic: bool = True,
    failure_code: str | None = None,
    trace_id: str | None = None,
) -> dict:
    return dict(
        id=id,
        amount=amount,
        currency=currency,
        arrival_date=arrival,
        status=status,
        automatic=automatic,
        failure_code=failure_code,
        trace_id=trace_id,
        created=CREATED,
    )


def tx(
    payout_id: str,
    amount: int,
    category: str = "charge",
    *,
    fee: int = 0,
    type: str | None = None,
    source: str | None = None,
    charge: str | None = None,
    intent: str | None = None,
    currency: str = "USD",
) -> dict:
    """A balance transaction; a charge-category one gets a charge id (`ch_<n>`) unless given."""
    n = next(_ids)
    if category == "charge" and charge is None:
        charge = f"ch_{n}"
    return dict(
        id=f"txn_{n}",
        payout=payout_id,
        amount=amount,
        fee=fee,
        net=amount - fee,
        currency=currency,
        type=type or category,
        reporting_category=category,
        source=source or charge,
        charge=charge,
        payment_intent=intent,
        created=CREATED,
    )


def own(payout_id: str, amount: int) -> dict:
    """The payout's own balance transaction (Stripe lists it with the payout's transactions)."""
    return tx(payout_id, -amount, "payout", type="payout", source=payout_id)


def deposit(
    id: str, amount: int, day: date, reference: str | None = "STRIPE PAYOUT", currency: str = "USD"
) -> dict:
    return dict(id=id, amount=amount, currency=currency, date=day, reference=reference)


def payment(id: str, amount: int, currency: str = "USD") -> dict:
    return dict(id=id, amount=amount, currency=currency)


def run(payouts=(), txs=(), payments=None, bank=(), **overrides) -> PayoutResult:
    """Reconcile March 2024 as of mid-April; `payments` defaults to a row for every charge."""
    if payments is None:
        payments = [
            payment(t["charge"], t["amount"], t["currency"])
            for t in txs
            if t["reporting_category"] == "charge"
        ]
    kwargs = {"first": FIRST, "last": LAST, "as_of": date(2024, 4, 15), **overrides}
    return reconcile_payouts(
        pl.DataFrame(list(payouts), schema=PAYOUTS_SCHEMA),
        pl.DataFrame(list(txs), schema=PAYOUT_TRANSACTIONS_SCHEMA),
        pl.DataFrame(list(payments), schema=PAYMENT_ROWS_SCHEMA),
        pl.DataFrame(list(bank), schema=BANK_SCHEMA),
        **kwargs,
    )


def only(result: PayoutResult):
    [line] = result.payouts
    return line


# -- itemization
# -------------------------------------------------------------------------------------
def test_itemized_net_sums_the_nets_and_difference_is_amount_minus_it():
    line = only(run([payout("po_1", 1000)], [tx("po_1", 700, fee=50), tx("po_1", 400, fee=40)]))
    assert (line.itemized_net, line.difference, line.transaction_count) == (1010, -10, 2)
    assert line.problems[0] == "itemization_mismatch"


def test_payout_that_adds_up_has_no_difference_and_no_problem():
    line = only(
        run(
            [payout("po_1", 1010)],
            [tx("po_1", 1100, fee=90), own("po_1", 1010)],
            bank=[deposit("b_1", 1010, date(2024, 3, 5))],
        )
    )
    assert (line.difference, line.problems, line.bank_deposit_id) == (0, (), "b_1")


def test_charge_category_is_charges():
    assert only(run([payout("po_1", 1)], [tx("po_1", 500, fee=30)])).charges == 500


def test_refund_and_refund_failure_are_refunds():
    line = only(
        run([payout("po_1", 1)], [tx("po_1", -300, "refund"), tx("po_1", 100, "refund_failure")])
    )
    assert (line.refunds, line.charges, line.adjustments) == (-200, 0, 0)


def test_dispute_and_dispute_reversal_are_disputes():
    line = only(
        run(
            [payout("po_1", 1)],
            [tx("po_1", -800, "dispute", fee=1500), tx("po_1", 800, "dispute_reversal", fee=-1500)],
        )
    )
    assert (line.disputes, line.fees) == (0, 0)


def test_fees_are_fee_category_amounts_minus_every_fee():
    line = only(
        run(
            [payout("po_1", 1)],
            [tx("po_1", 1000, fee=59), tx("po_1", -200, "fee"), tx("po_1", -300, "refund", fee=5)],
        )
    )
    assert line.fees == -200 - 59 - 5
    assert (
        line.charges + line.refunds + line.disputes + line.fees + line.adjustments
        == line.itemized_net
    )


def test_other_categories_are_adjustments():
    txs = [
        tx("po_1", -100, "adjustment"),
        tx("po_1", 250, "payout_reversal"),
        tx("po_1", 40, "other_adjustment"),
    ]
    assert only(run([payout("po_1", 1)], txs)).adjustments == 190


def test_payouts_own_transaction_is_left_out_of_every_sum():
    line = only(run([payout("po_1", 500)], [tx("po_1", 500), own("po_1", 500)]))
    assert (line.itemized_net, line.adjustments, line.transaction_count, line.difference) == (
        500,
        0,
        1,
        0,
    )


def test_manual_payout_is_not_itemized():
    line = only(
        run(
            [payout("po_m", 900, automatic=False)],
            [tx("po_m", 100)],
            bank=[deposit("b_1", 900, date(2024, 3, 5))],
        )
    )
    assert all(
        getattr(line, name) is None
        for name in (
            "itemized_net",
            "difference",
            "charges",
            "refunds",
            "disputes",
            "fees",
            "adjustments",
        )
    )
    assert (line.transaction_count, line.note, line.problems, line.bank_deposit_id) == (
        0,
        MANUAL_NOTE,
        (),
        "b_1",
    )


def test_automatic_payout_without_transactions_is_itemized_as_zero():
    line = only(run([payout("po_1", 300)]))
    assert (line.itemized_net, line.difference, line.transaction_count) == (0, 300, 0)


def test_payouts_outside_the_window_are_not_reported():
    result = run(
        [
            payout("po_feb", 1, date(2024, 2, 29)),
            payout("po_1", 1, date(2024, 3, 31)),
            payout("po_apr", 1, date(2024, 4, 1)),
        ]
    )
    assert [p.id for p in result.payouts] == ["po_1"]


def test_payouts_are_sorted_by_arrival_date_then_id():
    result = run(
        [
            payout("po_b", 1, date(2024, 3, 2)),
            payout("po_c", 1, date(2024, 3, 1)),
            payout("po_a", 1, date(2024, 3, 2)),
        ]
    )
    assert [p.id for p in result.payouts] == ["po_c", "po_a", "po_b"]


# -- charges against the payments table
# --------------------------------------------------------------
def test_charge_missing_from_payments_is_listed_by_charge_id():
    txs = [
        tx("po_1", 500, charge="ch_b"),
        tx("po_1", 700, charge="ch_a"),
        tx("po_1", 900, charge="ch_ok"),
    ]
    line = only(run([payout("po_1", 2100)], txs, payments=[payment("ch_ok", 900)]))
    assert line.charges_missing_in_database == ("ch_a", "ch_b")
    assert "charges_missing_in_database" in line.problems


def test_charge_recorded_under_its_payment_intent_is_found():
    txs = [
        tx("po_1", 500, charge="ch_1", intent="pi_1"),
        tx("po_1", 700, charge="ch_2", intent="pi_2"),
    ]
    line = only(run([payout("po_1", 1200)], txs, payments=[payment("pi_1", 500)]))
    assert line.charges_missing_in_database == ("ch_2",)


def test_charges_all_recorded_under_payment_intents_are_found():
    txs = [tx("po_1", 100 * k, charge=f"ch_{k}", intent=f"pi_{k}") for k in range(1, 8)]
    rows = [payment(f"pi_{k}", 100 * k + (k == 3)) for k in range(7, 0, -1) if k != 5]
    line = only(run([payout("po_1", 2800)], txs, payments=rows))
    assert (line.charges_missing_in_database, line.charges_amount_mismatch) == (
        ("ch_5",),
        ("ch_3",),
    )


def test_charge_amount_differing_from_its_rows_is_a_mismatch():
    txs = [tx("po_1", 500, charge="ch_1"), tx("po_1", 700, charge="ch_2", intent="pi_2")]
    line = only(
        run([payout("po_1", 1200)], txs, payments=[payment("ch_1", 450), payment("pi_2", 700)])
    )
    assert (line.charges_amount_mismatch, line.charges_missing_in_database) == (("ch_1",), ())
    assert line.problems == ("charge_amount_mismatch", "missing_in_bank")


def test_rows_sharing_an_id_are_summed_before_comparing():
    txs = [tx("po_1", 500, charge="ch_1"), tx("po_1", 700, charge="ch_2")]
    rows = [payment("ch_1", 200), payment("ch_1", 300), payment("ch_2", 700), payment("ch_2", 1)]
    assert only(run([payout("po_1", 1200)], txs, payments=rows)).charges_amount_mismatch == (
        "ch_2",
    )


def test_rows_in_another_currency_are_not_compared():
    txs = [tx("po_1", 500, charge="ch_1")]
    line = only(run([payout("po_1", 500)], txs, payments=[payment("ch_1", 470, "EUR")]))
    assert (line.charges_amount_mismatch, line.charges_missing_in_database) == ((), ())


def test_charge_id_rows_win_over_payment_intent_rows():
    txs = [tx("po_1", 500, charge="ch_1", intent="pi_1")]
    line = only(
        run([payout("po_1", 500)], txs, payments=[payment("ch_1", 500), payment("pi_1", 999)])
    )
    assert line.charges_amount_mismatch == ()


# -- the bank
# ----------------------------------------------------------------------------------------
ARRIVAL = date(2024, 3, 5)


def bank_line(bank, **kw):
    return only(
        run(
            [payout("po_1", 1000, ARRIVAL, trace_id=kw.pop("trace_id", None))],
            [tx("po_1", 1000)],
            bank=bank,
            **kw,
        )
    )


def test_deposit_of_same_amount_on_arrival_date_matches():
    assert bank_line([deposit("b_1", 1000, ARRIVAL)]).bank_deposit_id == "b_1"


def test_deposit_within_match_days_matches():
    assert bank_line([deposit("b_1", 1000, ARRIVAL + timedelta(days=3))]).bank_deposit_id == "b_1"


def test_deposit_one_cent_off_does_not_match():
    line = bank_line([deposit("b_1", 999, ARRIVAL)])
    assert (line.bank_deposit_id, line.problems) == (None, ("missing_in_bank",))


def test_deposit_one_day_too_late_does_not_match():
    assert bank_line([deposit("b_1", 1000, ARRIVAL + timedelta(days=4))]).bank_deposit_id is None


def test_deposit_before_arrival_date_does_not_match():
    assert bank_line([deposit("b_1", 1000, ARRIVAL - timedelta(days=1))]).bank_deposit_id is None


def test_deposit_in_another_currency_does_not_match():
    assert bank_line([deposit("b_1", 1000, ARRIVAL, currency="EUR")]).bank_deposit_id is None


def test_tie_is_won_by_reference_naming_the_payout_id():
    bank = [
        deposit("b_1", 1000, ARRIVAL),
        deposit("b_2", 1000, ARRIVAL + timedelta(days=2), "Stripe po_1 transfer"),
    ]
    assert bank_line(bank).bank_deposit_id == "b_2"


def test_tie_is_won_by_reference_naming_the_trace_id_in_any_case():
    bank = [
        deposit("b_1", 1000, ARRIVAL),
        deposit("b_2", 1000, ARRIVAL + timedelta(days=1), "STRIPE TRC-77AB"),
    ]
    assert bank_line(bank, trace_id="trc-77ab").bank_deposit_id == "b_2"


def test_tie_is_won_by_the_nearest_date():
    bank = [
        deposit("b_1", 1000, ARRIVAL + timedelta(days=2)),
        deposit("b_2", 1000, ARRIVAL + timedelta(days=1)),
    ]
    assert bank_line(bank).bank_deposit_id == "b_2"


def test_tie_on_date_is_won_by_the_smallest_deposit_id():
    bank = [deposit("b_9", 1000, ARRIVAL), deposit("b_10", 1000, ARRIVAL)]
    assert bank_line(bank).bank_deposit_id == "b_10"  # text order


def test_one_deposit_is_not_claimed_twice():
    payouts = [payout("po_1", 1000, ARRIVAL), payout("po_2", 1000, ARRIVAL)]
    result = run(
        payouts, [tx("po_1", 1000), tx("po_2", 1000)], bank=[deposit("b_1", 1000, ARRIVAL)]
    )
    assert [(p.id, p.bank_deposit_id) for p in result.payouts] == [("po_1", "b_1"), ("po_2", None)]
    assert result.counts()["missing_in_bank"] == 1


def test_two_equal_payouts_get_a_deposit_each():
    payouts = [payout("po_1", 1000, ARRIVAL), payout("po_2", 1000, ARRIVAL + timedelta(days=1))]
    bank = [
        deposit("b_1", 1000, ARRIVAL + timedelta(days=1)),
        deposit("b_2", 1000, ARRIVAL + timedelta(days=2)),
    ]
    result = run(payouts, [tx("po_1", 1000), tx("po_2", 1000)], bank=bank)
    assert {p.bank_deposit_id for p in result.payouts} == {"b_1", "b_2"}
    assert result.deposits_without_payout == ()


def test_context_payout_claims_its_deposit_and_is_not_reported():
    context = payout("po_feb", 1000, date(2024, 2, 28), trace_id="T-FEB")
    bank = [deposit("b_feb", 1000, date(2024, 3, 1), "STRIPE T-FEB"), deposit("b_1", 1000, ARRIVAL)]
    result = run([context, payout("po_1", 1000, ARRIVAL)], [tx("po_1", 1000)], bank=bank)
    assert [(p.id, p.bank_deposit_id) for p in result.payouts] == [("po_1", "b_1")]
    assert result.deposits_without_payout == ()


def test_deposit_without_payout_needs_stripe_in_its_reference():
    bank = [
        deposit("b_1", 1000, ARRIVAL),
        deposit("b_x", 555, date(2024, 3, 9), "stripe transfer"),
        deposit("b_rent", 90000, date(2024, 3, 10), "RENT MARCH"),
        deposit("b_none", 70, date(2024, 3, 11), None),
    ]
    result = run([payout("po_1", 1000, ARRIVAL)], [tx("po_1", 1000)], bank=bank)
    assert [d.id for d in result.deposits_without_payout] == ["b_x"]
    assert result.status == "problems"


def test_deposit_without_payout_is_any_deposit_without_reference_filtering():
    bank = [
        deposit("b_1", 1000, ARRIVAL),
        deposit("b_x", 555, date(2024, 3, 9), "stripe transfer"),
        deposit("b_rent", 90000, date(2024, 3, 10), "RENT MARCH"),
        deposit("b_none", 70, date(2024, 3, 11), None),
        deposit("b_out", -500, date(2024, 3, 12), "STRIPE"),
        deposit("b_apr", 1, date(2024, 4, 1), "STRIPE"),
    ]
    result = run(
        [payout("po_1", 1000, ARRIVAL)], [tx("po_1", 1000)], bank=bank, reference_configured=False
    )
    assert [d.id for d in result.deposits_without_payout] == ["b_x", "b_rent", "b_none"]


def test_missing_in_bank_once_match_days_have_passed():
    line = bank_line([], as_of=ARRIVAL + timedelta(days=3))
    assert line.problems == ("missing_in_bank",)


def test_awaiting_bank_before_match_days_have_passed_is_no_problem():
    result = run(
        [payout("po_1", 1000, ARRIVAL)], [tx("po_1", 1000)], as_of=ARRIVAL + timedelta(days=2)
    )
    assert only(result).problems == ("awaiting_bank",)
    assert (result.status, result.severity(), result.counts()["awaiting_bank"]) == (
        "reconciled",
        "pass",
        1,
    )


def test_without_a_bank_nothing_is_matched_nor_missing():
    result = run(
        [payout("po_1", 1000, ARRIVAL)],
        [tx("po_1", 1000)],
        bank=[deposit("b_x", 5, ARRIVAL)],
        bank_configured=False,
    )
    assert (result.bank_checked, only(result).bank_deposit_id, only(result).problems) == (
        False,
        None,
        (),
    )
    assert (result.deposits_without_payout, result.status) == ((), "reconciled")


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_failed_or_canceled_payout_is_failed_keeps_its_code_and_is_not_matched(status):
    result = run(
        [payout("po_1", 1000, ARRIVAL, status=status, failure_code="account_closed")],
        [tx("po_1", 1000)],
        bank=[deposit("b_1", 1000, ARRIVAL)],
    )
    line = only(result)
    assert (line.problems, line.failure_code, line.bank_deposit_id) == (
        ("failed",),
        "account_closed",
        None,
    )
    assert [d.id for d in result.deposits_without_payout] == ["b_1"]
    assert result.severity() == "error"


def test_problems_are_listed_in_their_order():
    result = run(
        [payout("po_1", 1000, ARRIVAL, status="failed")],
        [tx("po_1", 10, charge="ch_1"), tx("po_1", 20, charge="ch_2")],
        payments=[payment("ch_2", 21)],
    )
    assert only(result).problems == (
        "failed",
        "itemization_mismatch",
        "charges_missing_in_database",
        "charge_amount_mismatch",
    )


# -- status, severity, counts
# ------------------------------------------------------------------------
def test_clean_month_is_reconciled_and_passes():
    result = run(
        [payout("po_1", 1000, ARRIVAL)], [tx("po_1", 1000)], bank=[deposit("b_1", 1000, ARRIVAL)]
    )
    assert (result.status, result.severity()) == ("reconciled", "pass")


def test_charges_missing_is_a_warning():
    result = run(
        [payout("po_1", 1000, ARRIVAL)],
        [tx("po_1", 1000)],
        payments=[],
        bank=[deposit("b_1", 1000, ARRIVAL)],
    )
    assert (result.status, result.severity()) == ("problems", "warn")


def test_deposit_without_payout_is_a_warning():
    result = run(bank=[deposit("b_x", 5, ARRIVAL)])
    assert (result.status, result.severity()) == ("problems", "warn")


def test_itemization_mismatch_is_an_error():
    result = run(
        [payout("po_1", 1000, ARRIVAL)], [tx("po_1", 999)], bank=[deposit("b_1", 1000, ARRIVAL)]
    )
    assert (result.status, result.severity()) == ("problems", "error")


def test_counts_have_every_key_and_count_payouts():
    result = run(
        [payout("po_1", 1000, ARRIVAL), payout("po_2", 7, ARRIVAL, status="failed")],
        [tx("po_1", 1000)],
        bank=[deposit("b_x", 5, ARRIVAL)],
    )
    assert result.counts() == {
        "payouts": 2,
        "itemization_mismatch": 1,
        "charges_missing_in_database": 0,
        "charge_amount_mismatch": 0,
        "missing_in_bank": 1,
        "awaiting_bank": 0,
        "failed": 1,
        "deposits_without_payout": 1,
    }


def test_failed_run_has_status_error():
    result = PayoutResult.failed(FIRST, LAST, date(2024, 4, 2), "Stripe said 401")
    assert (result.status, result.severity(), result.to_json_dict()["error"]) == (
        "error",
        "error",
        "Stripe said 401",
    )
    assert result.to_json_dict()["payouts"] == [] and result.counts()["payouts"] == 0


def test_empty_frames_reconcile_to_nothing():
    result = reconcile_payouts(
        empty_payouts(),
        empty_payout_transactions(),
        empty_payment_rows(),
        empty_bank(),
        first=FIRST,
        last=LAST,
        as_of=LAST,
    )
    assert (result.payouts, result.deposits_without_payout, result.status) == ((), (), "reconciled")


def test_a_frame_lacking_a_column_is_refused():
    with pytest.raises(ValueError, match="lacks column"):
        reconcile_payouts(
            empty_payouts().drop("trace_id"),
            empty_payout_transactions(),
            empty_payment_rows(),
            empty_bank(),
            first=FIRST,
            last=LAST,
            as_of=LAST,
        )


# -- the edges
# ---------------------------------------------------------------------------------------
def multi_currency() -> PayoutResult:
    payouts = [
        payout("po_usd", 1999, ARRIVAL),
        payout("po_jpy", 1500, ARRIVAL, currency="JPY"),
        payout("po_kwd", 12345, ARRIVAL, currency="KWD"),
    ]
    txs = [
        tx("po_usd", 2030, fee=31),
        tx("po_jpy", 1600, fee=100, currency="JPY"),
        tx("po_kwd", 12346, fee=1, currency="KWD"),
    ]
    bank = [
        deposit("b_jpy", 1500, ARRIVAL, currency="JPY"),
        deposit("b_kwd", 7, ARRIVAL, "stripe", currency="KWD"),
    ]
    return run(payouts, txs, bank=bank)


def test_json_money_is_major_units_as_exact_strings():
    out = multi_currency().to_json_dict()
    by_id = {p["id"]: p for p in out["payouts"]}
    assert (by_id["po_usd"]["amount"], by_id["po_usd"]["charges"], by_id["po_usd"]["fees"]) == (
        "19.99",
        "20.30",
        "-0.31",
    )
    assert (
        by_id["po_jpy"]["amount"],
        by_id["po_jpy"]["itemized_net"],
        by_id["po_jpy"]["difference"],
    ) == ("1500", "1500", "0")
    assert (by_id["po_kwd"]["amount"], by_id["po_kwd"]["difference"]) == ("12.345", "0.000")
    assert out["deposits_without_payout"] == [
        {
            "id": "b_kwd",
            "amount": "0.007",
            "currency": "KWD",
            "date": "2024-03-05",
            "reference": "stripe",
        }
    ]


def test_json_has_the_documented_shape():
    out = multi_currency().to_json_dict()
    assert list(out) == [
        "status",
        "error",
        "bank_checked",
        "first",
        "last",
        "payouts",
        "deposits_without_payout",
        "counts",
        "stripe_source",
        "source_note",
        "source_mismatches",
    ]
    assert list(out["payouts"][0]) == [
        "id",
        "amount",
        "currency",
        "arrival_date",
        "status",
        "automatic",
        "failure_code",
        "trace_id",
        "itemized_net",
        "difference",
        "charges",
        "refunds",
        "disputes",
        "fees",
        "adjustments",
        "transaction_count",
        "charges_missing_in_database",
        "charges_amount_mismatch",
        "bank_deposit_id",
        "problems",
        "note",
    ]
    assert (out["first"], out["payouts"][0]["arrival_date"]) == ("2024-03-01", "2024-03-05")
    json.dumps(out)


def test_manual_payout_json_keeps_nulls():
    line = run([payout("po_m", 900, automatic=False)]).to_json_dict()["payouts"][0]
    assert (line["amount"], line["itemized_net"], line["fees"], line["note"]) == (
        "9.00",
        None,
        None,
        MANUAL_NOTE,
    )


def test_record_round_trips_through_json():
    result = run(
        [payout("po_1", 1000, ARRIVAL, trace_id="T1"), payout("po_m", 5, ARRIVAL, automatic=False)],
        [tx("po_1", 900, charge="ch_1"), tx("po_1", 50, charge="ch_2")],
        payments=[payment("ch_1", 899)],
        bank=[deposit("b_1", 1000, ARRIVAL), deposit("b_x", 3, ARRIVAL, None)],
        reference_configured=False,
    )
    assert result.payouts[0].charges_missing_in_database and result.deposits_without_payout
    assert PayoutResult.from_record(json.loads(json.dumps(result.to_record()))) == result
    failed = PayoutResult.failed(FIRST, LAST, LAST, "boom")
    assert PayoutResult.from_record(json.loads(json.dumps(failed.to_record()))) == failed


def test_a_repeated_payout_id_is_refused():
    with pytest.raises(ValueError, match="duplicate"):
        run([payout("po_1", 1), payout("po_1", 2)])


def test_no_bank_frame_is_fine_when_no_bank_is_configured():
    result = reconcile_payouts(
        pl.DataFrame([payout("po_1", 5, ARRIVAL)], schema=PAYOUTS_SCHEMA),
        empty_payout_transactions(),
        empty_payment_rows(),
        None,
        first=FIRST,
        last=LAST,
        as_of=LAST,
        bank_configured=False,
    )
    assert (result.bank_checked, only(result).problems) == (False, ("itemization_mismatch",))
