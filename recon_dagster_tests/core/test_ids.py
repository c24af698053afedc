"""Matching on the ids' (and currencies') u64 hashes: fast, and exact even when two share a hash."""

from __future__ import annotations

import polars as pl

from recon_dagster.core import keys, sides
from recon_dagster.core.ids import duplicated
from recon_dagster.core.keys import keyed
from recon_dagster.core.reconcile import flag_rows, reconcile
from recon_dagster.core.sides import collapse_duplicates, database_side, stripe_side
from recon_dagster_tests.support.core_builders import charge, charges, params, payment, payments

IDS = pl.Series("id", ["ch_a", "ch_b", "ch_a", "ch_c", "ch_d", "ch_c", "ch_a"])


def test_duplicated_marks_every_copy_of_a_repeated_id():
    assert duplicated(IDS, IDS.hash()).to_list() == [True, False, True, True, False, True, True]


def test_duplicated_confirms_a_shared_hash_on_the_text():
    every_id_collides = pl.Series([0] * len(IDS), dtype=pl.UInt64)
    assert duplicated(IDS, every_id_collides).to_list() == IDS.is_duplicated().to_list()


def test_duplicated_of_distinct_ids_is_all_false():
    ids = pl.Series("id", ["ch_1", "ch_2", "ch_3"])
    assert duplicated(ids, ids.hash()).to_list() == [False, False, False]


def _sides(colliding: bool):
    c = charges(charge("ch_ok", 1000), charge("ch_lost", 500), charge("ch_amt", 700))
    p = payments(
        payment("ch_ok", 1000),
        payment("ch_amt", 650),
        payment("ch_manual_1", 90),
        payment("ch_ok", 1000),
    )
    stripe, database = stripe_side(c, include_refunds=True), database_side(p, params())
    if colliding:  # the worst case: every id has the same hash
        stripe = stripe.with_columns(h=pl.lit(0, pl.UInt64))
        database = database.with_columns(h=pl.lit(0, pl.UInt64))
    collapsed, _ = collapse_duplicates(database)
    return flag_rows(stripe, collapsed, params())


def _flags(flagged: pl.DataFrame) -> list[tuple]:
    names = [
        "id",
        "missing_in_database",
        "missing_in_stripe",
        "amount_mismatches",
        "duplicates_in_database",
    ]
    return sorted(flagged.select(names).iter_rows())


def test_a_hash_collision_never_pairs_two_different_ids():
    assert _flags(_sides(colliding=True)) == _flags(_sides(colliding=False))


def test_flagged_rows_name_each_class_once():
    assert _flags(_sides(colliding=False)) == [
        ("ch_amt", False, False, True, False),
        ("ch_lost", True, False, False, False),
        ("ch_manual_1", False, True, False, False),
        ("ch_ok", False, False, False, True),
    ]


def test_intent_rows_find_their_own_charge_when_every_intent_id_shares_a_hash(monkeypatch):
    c = charges(
        charge("ch_a", 500, intent="pi_a"),
        charge("ch_b", 700, intent="pi_b"),
        charge("ch_c", 300, intent="pi_c"),
    )
    p = payments(payment("pi_b", 700), payment("pi_a", 500), payment("pi_zz", 90))
    expected = keyed(p, c, "auto")[0].get_column("key").to_list()
    # The worst case: every intent id (and every row's id) has the same hash.
    monkeypatch.setattr(keys, "id_hash", lambda ids: ids.str.len_bytes().cast(pl.UInt64) * 0)
    colliding = keyed(p, c, "auto")[0].get_column("key").to_list()
    assert colliding == expected == ["ch_b", "ch_a", "pi_zz"]


def _two_currencies() -> dict:
    c = charges(charge("ch_usd", 1000), charge("ch_eur", 500, "EUR"), charge("ch_jpy", 700, "JPY"))
    p = payments(payment("ch_usd", 1000), payment("ch_eur", 500, "USD"), payment("ch_jpy", 700))
    return reconcile(c, p, params()).to_json_dict()


def test_currencies_sharing_a_key_are_still_told_apart(monkeypatch):
    expected = _two_currencies()
    assert [f["payment_id"] for f in expected["currency_mismatches"]] == ["ch_jpy", "ch_eur"]
    # The worst case: every currency code has the same key, so the keys cannot tell them apart.
    monkeypatch.setattr(sides, "currency_key", lambda codes: pl.lit(0, pl.UInt64))
    assert _two_currencies() == expected


def test_a_null_currency_is_no_currency_mismatch_as_the_codes_compared_would_say():
    # A failed charge with no currency and its failed row: comparing codes says "unknown", not
    # "different"; the keys must say the same (a key of the null would differ from USD's).
    c = charges(charge("ch_a", 1000, status="failed"), charge("ch_b", 500))
    c = c.with_columns(currency=pl.when(pl.col("id") == "ch_a").then(None).otherwise("currency"))
    p = payments(payment("ch_a", 1000, status="failed"), payment("ch_b", 500))
    assert reconcile(c, p, params()).findings == ()
