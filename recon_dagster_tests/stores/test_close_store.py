"""Month closes, locks and prior-period adjustments in the report store, on DuckDB and
PostgreSQL."""

from __future__ import annotations

from datetime import date

import pytest

from recon_dagster.stores.close_store import CloseStore, PeriodLockedError


def figures(month: str, status: str = "tied_out") -> dict:
    return {
        "month": month,
        "status": status,
        "currencies": [{"currency": "USD", "closing": "1.00"}],
    }


def test_each_close_of_a_month_is_a_new_version_newest_first(store):
    closes = CloseStore(store)

    closes.save(figures("2026-11", "not_tied_out"), source="cli")
    _, version = closes.save(figures("2026-11"), source="dagster", run_id="r1")

    assert version == 2
    assert [(c["version"], c["status"], c["source"]) for c in closes.closes("2026-11")] == [
        (2, "tied_out", "dagster"),
        (1, "not_tied_out", "cli"),
    ]
    assert closes.closes("2026-11")[0]["figures"]["currencies"][0]["closing"] == "1.00"


def test_a_month_is_locked_until_unlocked_and_the_history_keeps_who_and_why(store):
    closes = CloseStore(store)
    close_id, _ = closes.save(figures("2026-11"), source="cli")

    closes.lock("2026-11", actor="controller", figures=figures("2026-11"), close_id=close_id)
    locked = closes.is_locked("2026-11")
    closes.unlock("2026-11", actor="cfo", reason="late refund")

    assert locked and not closes.is_locked("2026-11")
    assert [(e["action"], e["actor"], e["reason"]) for e in closes.locks("2026-11")] == [
        ("lock", "controller", None),
        ("unlock", "cfo", "late refund"),
    ]


def test_locking_a_locked_month_or_unlocking_an_open_one_is_refused(store):
    closes = CloseStore(store)
    closes.lock("2026-10", actor="a", figures=figures("2026-10"), close_id=None)

    with pytest.raises(PeriodLockedError, match="already locked"):
        closes.lock("2026-10", actor="a", figures=figures("2026-10"), close_id=None)
    with pytest.raises(PeriodLockedError, match="is already not locked"):
        closes.unlock("2026-09", actor="a", reason="why")


def test_an_adjustment_is_booked_once_per_run_key(store):
    closes = CloseStore(store)
    booking = {
        "run_key": "late_change:2026-11-03:abc",
        "locked_month": "2026-11",
        "day": date(2026, 11, 3),
        "booked_month": "2026-12",
        "events": "evt_1",
        "event_types": "charge.refunded",
    }

    first, again = closes.book_adjustment(**booking), closes.book_adjustment(**booking)

    assert (first, again) == (True, False)
    [booked] = closes.adjustments("2026-12")
    assert (booked["locked_month"], booked["day"], booked["events"]) == (
        "2026-11",
        date(2026, 11, 3),
        "evt_1",
    )
