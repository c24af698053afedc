"""Payout reports in the report store, on a real DuckDB file and a real PostgreSQL schema."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from recon_dagster.core.payout_result import Deposit, PayoutLine, PayoutResult
from recon_dagster.stores.payout_store import PayoutStore
from recon_dagster_tests.support.store_sql import raw

DAY = date(2024, 7, 10)


def a_result(*, difference: int = 0) -> PayoutResult:
    line = PayoutLine(
        id="po_1",
        amount=9_680,
        currency="USD",
        arrival_date=DAY,
        status="paid",
        automatic=True,
        itemized_net=9_680 - difference,
        difference=difference,
        charges=10_000,
        refunds=0,
        disputes=0,
        fees=-320,
        adjustments=0,
        transaction_count=1,
        charges_missing_in_database=("ch_x",),
        bank_deposit_id="L1",
        problems=("charges_missing_in_database",),
    )
    deposit = Deposit(id="L9", amount=12_345, currency="USD", date=DAY, reference="STRIPE TRANSFER")
    return PayoutResult(
        first=DAY,
        last=DAY,
        as_of=date(2024, 7, 20),
        match_days=3,
        bank_checked=True,
        payouts=(line,),
        deposits_without_payout=(deposit,),
    )


def test_a_saved_day_reads_back_as_the_same_result(store):
    payouts = PayoutStore(store)

    payouts.save(a_result())

    assert payouts.latest(DAY) == a_result()


def test_a_day_read_from_a_stripe_mirror_reads_back_with_its_source_and_findings(store):
    payouts = PayoutStore(store)
    from_mirror = replace(
        a_result(),
        stripe_source="mirror:data_pipeline",
        source_note="the Stripe mirror has not caught up",
        source_mismatches=("po_1",),
    )

    payouts.save(from_mirror)

    assert payouts.latest(DAY) == from_mirror


def test_saving_a_day_again_replaces_its_report_and_line_items(store):
    payouts = PayoutStore(store)

    payouts.save(a_result())
    payouts.save(a_result(difference=100))

    assert raw(store, "SELECT count(*) FROM {s}payout_reports") == [(1,)]
    lines = raw(
        store,
        "SELECT kind, id, amount_major, difference, problems FROM {s}payout_line_items ORDER BY "
        "position",
    )
    assert lines == [
        ("payout", "po_1", Decimal("96.8000"), 100, "charges_missing_in_database"),
        ("deposit_without_payout", "L9", Decimal("123.4500"), None, "deposits_without_payout"),
    ]
    assert payouts.latest(DAY).payouts[0].difference == 100


def test_an_unknown_day_reads_as_none(store):
    assert PayoutStore(store).latest(DAY) is None
