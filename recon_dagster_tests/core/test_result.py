"""`ReconciliationResult` holds the core's findings as a frame: it must read as the objects do."""

from __future__ import annotations

import pickle
from dataclasses import FrozenInstanceError
from datetime import timedelta

import pytest

from recon_dagster.core.recommend import recommend
from recon_dagster.core.reconcile import reconcile
from recon_dagster.core.result import CLASSES
from recon_dagster_tests.support.core_builders import (
    NOON,
    charge,
    charges,
    params,
    payment,
    payments,
)


def _mixed_day():
    """A day with a finding of most classes, in three currencies, disputes and invalid rows."""
    return reconcile(
        charges(
            charge("ch_amount", 1500),
            charge("ch_missing", 700, "JPY"),
            charge("ch_lost", 900, dispute=("dp_1", "lost", 900)),
            charge("ch_open", 400, "EUR", dispute=("dp_2", "needs_response", 400)),
            charge("ch_failed", 300, status="failed"),
            charge("ch_refund", 1000, refunded=250),
            charge("ch_cur", 800),
        ),
        payments(
            payment("ch_amount", 1400),
            payment("ch_lost", 900),
            payment("ch_open", 400, "EUR"),
            payment("ch_failed", 300, status="paid"),
            payment("ch_refund", 1000, refunded=0),
            payment("ch_cur", 800, "GBP"),
            payment("ch_extra", 5),
            payment("ch_extra", 5),
            payment(None, 100, created=NOON - timedelta(hours=1)),
            payment("ch_bad", None, invalid=("amount", "amount is NULL")),
        ),
        params(refunds_tracked=True),
    )


def test_a_core_result_reads_the_same_as_one_built_from_finding_objects():
    from_frame = _mixed_day()
    from_objects = from_frame.with_changes(findings=tuple(_mixed_day().findings))
    assert len({f.kind for f in from_objects.findings}) >= 8
    assert from_frame.counts() == from_objects.counts()
    assert from_frame.missing_in_database == from_objects.missing_in_database == ["ch_missing"]
    assert from_frame.missing_in_stripe == from_objects.missing_in_stripe
    for kind in CLASSES:
        assert from_frame.of(kind) == from_objects.of(kind)
    assert from_frame.to_json_dict() == from_objects.to_json_dict()
    assert from_frame.to_record() == from_objects.to_record()
    assert recommend(from_frame) == recommend(from_objects) == list(from_frame.recommendations)
    assert from_frame.findings_frame.equals(from_objects.findings_frame)
    assert from_frame == from_objects


def test_changing_a_result_keeps_its_findings():
    day = _mixed_day()
    changed = day.with_changes(stripe_source="mirror:sigma", source_note="behind")
    assert (changed.stripe_source, changed.source_note) == ("mirror:sigma", "behind")
    assert changed.findings == day.findings and changed.counts() == day.counts()


def test_a_result_held_as_a_frame_survives_pickling():
    day = _mixed_day()
    assert pickle.loads(pickle.dumps(day)) == day


def test_findings_cannot_be_reassigned():
    day = _mixed_day()
    with pytest.raises(FrozenInstanceError):
        day.findings = ()  # type: ignore[misc]
