"""The reconciliation core on small frames: one behaviour per test."""

from __future__ import annotations

from dataclasses import asdict
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


def ids(result, kind):
    return [f.payment_id for f in result.of(kind)]


def test_matching_day_is_success_with_equal_totals():
    r = reconcile(
        charges(charge("ch_1", 1000), charge("ch_2", 250)),
        payments(payment("ch_1", 1000), payment("ch_2", 250)),
        params(),
    )
    assert r.status == "success"
    assert (r.stripe_total, r.database_total, r.discrepancy) == (1250, 1250, 0)
    assert r.findings == ()
    assert r.recommendations[0].startswith("No discrepancies")


def test_charge_absent_from_database_is_missing_in_database():
    r = reconcile(
        charges(charge("ch_1", 1000), charge("ch_2", 500)),
        payments(payment("ch_1", 1000)),
        params(),
    )
    assert r.missing_in_database == ["ch_2"]
    assert r.discrepancy == 500
    assert r.discrepancy_percentage == pytest.approx(100 * 500 / 1500)


def test_paid_row_absent_from_stripe_is_missing_in_stripe():
    r = reconcile(
        charges(charge("ch_1", 1000)),
        payments(payment("ch_1", 1000), payment("ch_manual_7", 300)),
        params(),
    )
    assert r.missing_in_stripe == ["ch_manual_7"]


def test_failed_charge_without_row_is_not_a_discrepancy():
    r = reconcile(
        charges(charge("ch_1", 1000), charge("ch_f", 900, status="failed")),
        payments(payment("ch_1", 1000)),
        params(),
    )
    assert r.findings == ()


def test_amount_mismatch_reports_both_amounts_and_signed_difference():
    r = reconcile(
        charges(charge("ch_1", 1000)),
        payments(payment("ch_1", 900)),
        params(tolerance_percentage=50),
    )
    [m] = r.amount_mismatches
    assert (m.payment_id, m.stripe_amount, m.database_amount, m.difference) == (
        "ch_1",
        1000,
        900,
        100,
    )
    assert r.status == "success"  # 10% is within a 50% tolerance


def test_failed_charge_recorded_as_paid_is_a_status_mismatch():
    r = reconcile(
        charges(charge("ch_1", 1000), charge("ch_2", 700, status="failed")),
        payments(payment("ch_1", 1000), payment("ch_2", 700, status="paid")),
        params(),
    )
    [s] = r.of("status_mismatches")
    assert (s.payment_id, s.stripe_status, s.database_status, s.difference) == (
        "ch_2",
        "failed",
        "paid",
        -700,
    )


def test_uncaptured_charge_is_not_collected_money():
    r = reconcile(
        charges(charge("ch_1", 1000, captured=False)), payments(payment("ch_1", 1000)), params()
    )
    assert ids(r, "status_mismatches") == ["ch_1"]
    assert r.stripe_total == 0


def test_succeeded_charge_recorded_as_failed_is_a_status_mismatch():
    r = reconcile(
        charges(charge("ch_1", 1000)), payments(payment("ch_1", 1000, status="failed")), params()
    )
    assert ids(r, "status_mismatches") == ["ch_1"]
    assert r.missing_in_database == []


def test_paid_statuses_are_configurable_and_case_insensitive():
    p = params(paid_statuses=("captured",))
    r = reconcile(
        charges(charge("ch_1", 1000)), payments(payment("ch_1", 1000, status="CAPTURED")), p
    )
    assert r.findings == ()


def test_charge_recorded_twice_is_a_duplicate_with_the_extra_amount():
    r = reconcile(
        charges(charge("ch_1", 1000)),
        payments(payment("ch_1", 1000), payment("ch_1", 1000)),
        params(),
    )
    [d] = r.of("duplicates_in_database")
    assert (d.database_count, d.database_amount, d.difference) == (2, 2000, -1000)
    assert r.amount_mismatches == []
    assert r.database_total == 2000


def test_same_payment_in_two_currencies_is_a_currency_mismatch_not_an_amount_mismatch():
    r = reconcile(
        charges(charge("ch_1", 1000, "EUR")), payments(payment("ch_1", 1000, "USD")), params()
    )
    [c] = r.of("currency_mismatches")
    assert (c.stripe_currency, c.database_currency) == ("EUR", "USD")
    assert r.amount_mismatches == []
    assert {t.currency for t in r.totals} == {"EUR", "USD"}


def test_include_refunds_compares_net_amounts_on_both_sides():
    c = charges(charge("ch_1", 1000, refunded=400))
    p = payments(payment("ch_1", 1000, refunded=400))
    r = reconcile(c, p, params(include_refunds=True, refunds_tracked=True))
    assert (r.stripe_total, r.database_total, r.findings) == (600, 600, ())


def test_without_include_refunds_gross_amounts_are_compared():
    c = charges(charge("ch_1", 1000, refunded=400))
    p = payments(payment("ch_1", 1000, refunded=400))
    r = reconcile(c, p, params(include_refunds=False, refunds_tracked=True))
    assert (r.stripe_total, r.database_total, r.findings) == (1000, 1000, ())


def test_refund_missing_from_database_is_a_refund_mismatch_only():
    c = charges(charge("ch_1", 1000, refunded=1000))
    p = payments(payment("ch_1", 1000, refunded=0))
    r = reconcile(c, p, params(include_refunds=True, refunds_tracked=True))
    [f] = r.findings
    assert (f.kind, f.stripe_refunded, f.database_refunded, f.difference) == (
        "refund_mismatches",
        1000,
        0,
        -1000,
    )


def test_refund_mismatch_is_reported_but_not_counted_when_refunds_are_excluded():
    c = charges(charge("ch_1", 1000, refunded=300))
    p = payments(payment("ch_1", 1000, refunded=0))
    r = reconcile(c, p, params(include_refunds=False, refunds_tracked=True))
    assert ids(r, "refund_mismatches") == ["ch_1"]
    assert (r.gross_discrepancy, r.status) == (0, "success")


def test_refunded_status_row_matches_a_fully_refunded_charge():
    c = charges(charge("ch_1", 1000, refunded=1000), charge("ch_2", 500))
    p = payments(payment("ch_1", 1000, status="refunded"), payment("ch_2", 500))
    assert reconcile(c, p, params(include_refunds=True)).findings == ()


def test_untracked_refund_shows_as_amount_mismatch_with_refund_hint():
    r = reconcile(
        charges(charge("ch_1", 1000, refunded=250)),
        payments(payment("ch_1", 1000)),
        params(include_refunds=True),
    )
    [m] = r.amount_mismatches
    assert (m.stripe_amount, m.database_amount) == (750, 1000)
    assert m.detail == "Stripe shows 2.50 USD refunded"
    assert "refund timing" in " ".join(r.recommendations)


def test_zero_decimal_currency_keeps_whole_yen():
    r = reconcile(
        charges(charge("ch_1", 1500, "JPY")),
        payments(payment("ch_1", 1400, "JPY")),
        params(tolerance_percentage=1),
    )
    assert (r.currency, r.stripe_total, r.discrepancy) == ("JPY", 1500, 100)
    assert r.to_json_dict()["stripe_total"] == "1500"
    assert r.to_json_dict()["amount_mismatches"][0]["difference"] == "100"


def test_offsetting_differences_do_not_pass_as_clean():
    # +500 missing in the database and -500 missing in Stripe: the totals agree exactly.
    c = charges(charge("ch_1", 10_000), charge("ch_2", 500))
    p = payments(payment("ch_1", 10_000), payment("ch_manual_1", 500))
    r = reconcile(c, p, params())
    assert (r.discrepancy, r.discrepancy_percentage) == (0, 0.0)
    assert r.gross_discrepancy == 1000
    assert r.status == "discrepancy_found"
    assert r.recommendations[0].startswith("Differences offset each other")


def test_tolerance_is_exclusive_at_the_threshold():
    c = charges(charge("ch_1", 9_900), charge("ch_2", 100))
    p = payments(payment("ch_1", 9_900))
    assert reconcile(c, p, params(tolerance_percentage=1)).status == "success"  # exactly 1%
    assert reconcile(c, p, params(tolerance_percentage=0.99)).status == "discrepancy_found"


def test_database_rows_without_any_stripe_charges_are_one_hundred_percent():
    r = reconcile(charges(), payments(payment("ch_manual_1", 100)), params())
    assert (r.discrepancy_percentage, r.status) == (100.0, "discrepancy_found")


def test_empty_day_is_success_with_no_currency():
    r = reconcile(charges(), payments(), params())
    assert (r.status, r.currency, r.stripe_total) == ("success", None, 0)


def test_headline_is_the_worst_currency_and_totals_are_kept_per_currency():
    c = charges(
        charge("ch_u1", 10_000, "USD"), charge("ch_j1", 5_000, "JPY"), charge("ch_j2", 5_000, "JPY")
    )
    p = payments(payment("ch_u1", 10_000, "USD"), payment("ch_j1", 5_000, "JPY"))
    r = reconcile(c, p, params())
    assert r.currency == "JPY"
    assert r.discrepancy_percentage == 50.0
    usd = next(t for t in r.totals if t.currency == "USD")
    assert (usd.stripe_total, usd.discrepancy) == (10_000, 0)


def test_counterpart_across_midnight_is_a_timing_difference_not_missing():
    late = NOON + timedelta(hours=11, minutes=59, seconds=58)
    c = charges(charge("ch_1", 1000), charge("ch_late", 400, created=late))
    p = payments(payment("ch_1", 1000))
    neighbour = payments(payment("ch_late", 400, created=late + timedelta(seconds=5)))
    r = reconcile(c, p, params(), neighbour_payments=neighbour)
    assert r.missing_in_database == []
    [t] = r.of("timing_differences")
    assert (t.payment_id, t.stripe_amount, t.database_amount, t.difference) == (
        "ch_late",
        400,
        400,
        0,
    )
    assert (r.gross_discrepancy, r.status) == (0, "success")


def test_row_whose_charge_is_on_the_neighbouring_day_is_a_timing_difference():
    p = payments(
        payment("ch_1", 1000), payment("ch_early", 300, created=NOON - timedelta(hours=12))
    )
    neighbour = charges(charge("ch_early", 300, created=NOON - timedelta(hours=12, seconds=4)))
    r = reconcile(charges(charge("ch_1", 1000)), p, params(), neighbour_charges=neighbour)
    assert ids(r, "timing_differences") == ["ch_early"]
    assert r.missing_in_stripe == []


def test_findings_are_ranked_by_money_at_stake_in_recommendations():
    c = charges(charge("ch_big", 9_000), charge("ch_ok", 1_000))
    p = payments(payment("ch_ok", 1_000), payment("ch_manual", 10))
    recs = reconcile(c, p, params()).recommendations
    assert recs[0].startswith("1 payment (90.00 USD) collected by Stripe")
    assert "ch_manual" in recs[1]


def test_input_with_a_wrong_column_type_is_refused():
    bad = charges(charge("ch_1", 1000)).with_columns(
        amount=charges(charge("ch_1", 1000))["amount"].cast(float)
    )
    with pytest.raises(ValueError, match="amount is Float64"):
        reconcile(bad, payments(), params())


def test_row_without_an_id_is_quarantined_not_fatal():
    r = reconcile(
        charges(charge("ch_1", 1000)), payments(payment("ch_1", 1000), payment(None, 100)), params()
    )
    [bad] = r.of("invalid_rows")
    assert (bad.payment_id, bad.source, bad.column, bad.detail) == ("", "database", "id", "NULL id")
    assert r.counts()["invalid_rows"] == 1 and r.stripe_total == r.database_total == 1000


def test_duplicate_rows_are_reported_even_when_their_charge_is_across_midnight():
    early = NOON - timedelta(hours=12)
    p = payments(payment("ch_early", 300, created=early), payment("ch_early", 300, created=early))
    neighbour = charges(charge("ch_early", 300, created=early - timedelta(seconds=4)))
    r = reconcile(charges(), p, params(), neighbour_charges=neighbour)
    assert ids(r, "timing_differences") == ["ch_early"]
    [dup] = r.of("duplicates_in_database")
    assert (dup.database_count, dup.difference) == (2, -300)
    assert r.gross_discrepancy == 300


def test_the_lossless_record_is_asdicts_form_of_every_total_and_finding():
    r = reconcile(
        charges(
            charge("ch_amount", 1500),
            charge("ch_missing", 700, "JPY"),
            charge("ch_disputed", 900, dispute=("dp_1", "lost", 900)),
        ),
        payments(payment("ch_amount", 1400), payment("ch_disputed", 900), payment("ch_extra", 5)),
        params(),
    )
    assert {f.kind for f in r.findings} >= {"amount_mismatches", "missing_in_database", "disputes"}
    record, reference = r.to_record(), asdict(r)
    assert record == reference
    assert [list(f) for f in record["findings"]] == [list(f) for f in reference["findings"]]
    assert [list(t) for t in record["totals"]] == [list(t) for t in reference["totals"]]


def test_rows_without_an_id_are_listed_in_the_same_order_whatever_the_input_order():
    rows = [
        payment(None, 100 + i, ("USD", "EUR", "JPY")[i % 3], created=NOON - timedelta(minutes=i))
        for i in range(12)
    ]
    forward = reconcile(charges(), payments(*rows), params()).findings
    backward = reconcile(charges(), payments(*reversed(rows)), params()).findings
    assert len(forward) == 12 and forward == backward
