"""The core on what real Stripe accounts hold: PaymentIntent ids, partial captures, authorisations,
disputes, and rows it cannot reconcile. Small frames, one behaviour per test."""

from __future__ import annotations

from datetime import timedelta

import pytest

from recon_dagster.core.reconcile import reconcile
from recon_dagster_tests.support.core_builders import (
    NOON,
    charge,
    charges,
    params,
    payment,
    payments,
)

EARLIER = NOON - timedelta(minutes=5)


def kinds(result) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in result.findings:
        out.setdefault(f.kind, []).append(f.payment_id)
    return out


def test_a_payment_intent_row_matches_its_succeeded_charge_and_the_failed_attempts_stay_quiet():
    c = charges(
        charge("ch_declined", 1000, status="failed", intent="pi_1", created=EARLIER),
        charge("ch_paid", 1000, intent="pi_1"),
    )
    r = reconcile(c, payments(payment("pi_1", 1000)), params())
    assert r.findings == () and (r.stripe_total, r.database_total) == (1000, 1000)


def test_a_table_may_mix_charge_and_intent_ids():
    c = charges(
        charge("ch_a", 500, intent="pi_a"), charge("ch_b", 700, intent="pi_b"), charge("py_c", 300)
    )
    r = reconcile(
        c, payments(payment("ch_a", 500), payment("pi_b", 700), payment("py_c", 300)), params()
    )
    assert r.findings == ()


def test_an_intent_row_marked_paid_without_a_succeeded_charge_is_a_status_mismatch():
    c = charges(
        charge("ch_try1", 900, status="failed", intent="pi_9", created=EARLIER),
        charge("ch_try2", 900, status="failed", intent="pi_9"),
    )
    [f] = reconcile(c, payments(payment("pi_9", 900)), params()).findings
    assert (f.kind, f.payment_id, f.database_id, f.stripe_status) == (
        "status_mismatches",
        "ch_try2",
        "pi_9",
        "failed",
    )


def test_two_rows_for_one_intent_are_a_duplicate_not_two_matches():
    c = charges(charge("ch_1", 400, intent="pi_1"))
    r = reconcile(
        c,
        payments(payment("pi_1", 400), payment("ch_1", 400, created=NOON + timedelta(seconds=3))),
        params(),
    )
    assert kinds(r) == {"duplicates_in_database": ["ch_1"]}
    assert r.of("duplicates_in_database")[0].database_count == 2 and r.database_total == 800


def test_an_intent_row_without_any_charge_is_missing_in_stripe_under_its_own_id():
    r = reconcile(charges(), payments(payment("pi_ghost", 250)), params())
    assert r.missing_in_stripe == ["pi_ghost"]


def test_a_charge_missing_from_an_intent_table_is_found_across_midnight_by_its_intent_id():
    late_row = payments(payment("pi_late", 600, created=NOON + timedelta(hours=12, seconds=1)))
    r = reconcile(
        charges(charge("ch_late", 600, intent="pi_late")),
        payments(),
        params(),
        neighbour_payments=late_row,
    )
    assert kinds(r) == {"timing_differences": ["ch_late"]}


def test_stripe_collected_the_captured_amount_of_a_partial_capture():
    c = charges(charge("ch_hotel", 20_000, amount_captured=15_000))
    assert reconcile(c, payments(payment("ch_hotel", 15_000)), params()).findings == ()
    [f] = reconcile(c, payments(payment("ch_hotel", 20_000)), params()).findings
    assert (f.kind, f.stripe_amount, f.database_amount, f.difference) == (
        "amount_mismatches",
        15_000,
        20_000,
        -5_000,
    )


def test_an_authorisation_is_not_money_and_a_paid_row_for_it_says_so():
    c = charges(charge("ch_auth", 5_000, captured=False))
    r = reconcile(c, payments(payment("ch_auth", 5_000)), params())
    [f] = r.findings
    assert (f.kind, f.detail) == ("status_mismatches", "authorized, not captured")
    assert (r.stripe_total, r.database_total) == (0, 5_000)


def test_a_lost_dispute_is_money_against_the_tolerance_and_an_open_one_money_at_risk():
    c = charges(
        charge("ch_ok", 100_000),
        charge("ch_lost", 2_000, dispute=("dp_1", "lost", 2_000)),
        charge("ch_open", 3_000, dispute=("dp_2", "needs_response", 3_000)),
        charge("ch_won", 500, dispute=("dp_3", "won", 500)),
    )
    p = payments(
        payment("ch_ok", 100_000),
        payment("ch_lost", 2_000),
        payment("ch_open", 3_000),
        payment("ch_won", 500),
    )
    r = reconcile(c, p, params())
    assert kinds(r) == {"disputes": ["ch_lost", "ch_open", "ch_won"]}
    lost = r.of("disputes")[0]
    assert (lost.dispute_id, lost.dispute_status, lost.difference, lost.detail) == (
        "dp_1",
        "lost",
        2_000,
        "lost: fraudulent",
    )
    [usd] = r.totals
    assert (usd.gross_discrepancy, usd.disputes_lost, usd.disputes_open) == (2_000, 2_000, 3_000)
    assert r.status == "discrepancy_found"  # 2,000 of 105,500 is above the 1% tolerance
    assert "record the chargeback" in r.recommendations[0].lower()
    body = r.to_json_dict()
    assert body["counts"]["disputes"] == 3
    first = {
        k: body["disputes"][0][k]
        for k in ("id", "amount", "currency", "dispute_id", "dispute_status")
    }
    assert first == {
        "id": "ch_lost",
        "amount": "20.00",
        "currency": "USD",
        "dispute_id": "dp_1",
        "dispute_status": "lost",
    }
    assert (
        body["totals_by_currency"][0]["disputes_lost"] == "20.00"
        and body["totals_by_currency"][0]["disputes_open"] == "30.00"
    )


def test_a_lost_dispute_the_table_records_as_a_refund_is_listed_but_no_longer_counted():
    c = charges(
        charge("ch_ok", 100_000),
        charge("ch_lost", 2_000, refunded=500, dispute=("dp_1", "lost", 1_500)),
    )
    p = payments(
        payment("ch_ok", 100_000, refunded=0), payment("ch_lost", 2_000, refunded=2_000)
    )  # the refund and the chargeback

    r = reconcile(c, p, params(refunds_tracked=True))

    assert kinds(r) == {
        "disputes": ["ch_lost"]
    }  # no refund or amount mismatch: both sides say the money is gone
    [lost] = r.of("disputes")
    assert (lost.difference, lost.detail) == (
        0,
        "lost: fraudulent; the chargeback is recorded in the payments table",
    )
    [usd] = r.totals
    assert (usd.stripe_total, usd.database_total, usd.gross_discrepancy, usd.disputes_lost) == (
        100_000,
        100_000,
        0,
        1_500,
    )
    assert r.status == "success" and not any(
        "record the chargeback" in x.lower() for x in r.recommendations
    )


def test_a_refunded_status_records_a_whole_lost_dispute_without_a_refunded_column():
    c = charges(charge("ch_ok", 100_000), charge("ch_lost", 2_000, dispute=("dp_1", "lost", 2_000)))
    p = payments(payment("ch_ok", 100_000), payment("ch_lost", 2_000, status="refunded"))

    r = reconcile(c, p, params())

    assert kinds(r) == {"disputes": ["ch_lost"]} and r.of("disputes")[0].difference == 0


def test_a_refund_other_than_the_lost_dispute_is_a_refund_mismatch_and_the_dispute_counts():
    c = charges(charge("ch_ok", 100_000), charge("ch_lost", 2_000, dispute=("dp_1", "lost", 1_500)))
    p = payments(payment("ch_ok", 100_000, refunded=0), payment("ch_lost", 2_000, refunded=700))

    r = reconcile(c, p, params(refunds_tracked=True))

    assert kinds(r) == {"refund_mismatches": ["ch_lost"], "disputes": ["ch_lost"]}
    assert r.of("disputes")[0].difference == 1_500


def test_a_chargeback_on_a_charge_recorded_twice_is_not_taken_as_recorded():
    c = charges(charge("ch_ok", 100_000), charge("ch_lost", 2_000, dispute=("dp_1", "lost", 2_000)))
    p = payments(
        payment("ch_ok", 100_000, refunded=0),
        payment("ch_lost", 2_000, refunded=2_000),
        payment("ch_lost", 2_000, refunded=2_000),
    )

    r = reconcile(c, p, params(refunds_tracked=True))

    # Which row speaks for the charge is the duplicate's question: until it is answered, nothing is
    # settled.
    assert kinds(r) == {
        "refund_mismatches": ["ch_lost"],
        "duplicates_in_database": ["ch_lost"],
        "disputes": ["ch_lost"],
    }
    assert r.of("disputes")[0].difference == 2_000


@pytest.mark.parametrize("bad_id", ["cs_test_1", "in_1", "", "order 42"])
def test_an_id_of_no_payment_kind_is_an_invalid_row_not_a_missing_payment(bad_id):
    r = reconcile(
        charges(charge("ch_1", 1000)),
        payments(payment("ch_1", 1000), payment(bad_id, 70)),
        params(),
    )
    [f] = r.findings
    assert (f.kind, f.payment_id, f.source, f.column) == ("invalid_rows", bad_id, "database", "id")
    assert r.database_total == 1000 and r.status == "success"


def test_rows_a_source_marked_invalid_are_listed_and_the_rest_is_reconciled():
    p = payments(
        payment("ch_1", 1000),
        payment("ch_2", None, invalid=("total", "NULL in amount column 'total'")),
    )
    r = reconcile(charges(charge("ch_1", 1000)), p, params())
    body = r.to_json_dict()
    assert body["counts"]["invalid_rows"] == 1 and r.stripe_total == r.database_total == 1000
    assert body["invalid_rows"] == [
        {
            "id": "ch_2",
            "source": "database",
            "created": NOON.isoformat(),
            "column": "total",
            "reason": "NULL in amount column 'total'",
        }
    ]
    assert "could not be reconciled" in r.recommendations[0]


def unreadable_charge(problem: str) -> dict:
    """`ch_bad` as the Stripe source keeps a charge whose `amount` it could not read."""
    return charge("ch_bad", 100) | {
        "amount": None,
        "invalid_column": "amount",
        "invalid_reason": f"Stripe charge ch_bad: 'amount' {problem}",
    }


def test_a_stripe_charge_that_failed_validation_is_an_invalid_row_not_missing_in_database():
    bad = unreadable_charge("is None")
    r = reconcile(charges(bad, charge("ch_1", 1000)), payments(payment("ch_1", 1000)), params())
    assert kinds(r) == {"invalid_rows": ["ch_bad"]} and r.of("invalid_rows")[0].source == "stripe"


def test_match_on_charge_takes_every_id_as_a_charge_id():
    r = reconcile(
        charges(charge("order_1", 1000)),
        payments(payment("order_1", 1000)),
        params(match_on="charge"),
    )
    assert r.findings == ()


def test_match_on_payment_intent_refuses_charge_ids():
    c = charges(charge("ch_1", 1000, intent="pi_1"), charge("ch_2", 1000, intent="pi_2"))
    r = reconcile(
        c, payments(payment("pi_1", 1000), payment("ch_2", 1000)), params(match_on="payment_intent")
    )
    assert kinds(r) == {"missing_in_database": ["ch_2"], "invalid_rows": ["ch_2"]}


def test_a_stripe_charge_we_could_not_read_keeps_the_day_from_success():
    bad = unreadable_charge("is missing")
    r = reconcile(charges(bad, charge("ch_1", 1000)), payments(payment("ch_1", 1000)), params())
    assert r.discrepancy == 0 and r.status == "discrepancy_found"
