"""A late change to a day of a locked month, under each RECON_LOCKED_PERIOD_POLICY: what the
sensor's run requests become, what is recorded, and what the alert says."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from recon_dagster.alerts.slack_text import late_events
from recon_dagster.defs.late_changes import locked_periods
from recon_dagster.defs.shared import late_change_tags, late_events as run_late_events
from recon_dagster.stores.close_store import CloseStore
from recon_dagster.stores.report_store import ReportStore

TODAY = date(2026, 12, 4)


@pytest.fixture
def closes(tmp_path) -> CloseStore:
    closes = CloseStore(ReportStore(f"duckdb:///{tmp_path}/recon.duckdb"))
    closes.lock("2026-11", actor="controller", figures={"month": "2026-11"}, close_id=None)
    return closes


def request(day: str, key: str = "k") -> dg.RunRequest:
    return dg.RunRequest(
        job_name="daily_reconciliation",
        run_key=f"late_change:{day}:{key}",
        partition_key=day,
        tags=late_change_tags("evt_1,evt_2", 2, "charge.refunded"),
    )


def test_a_day_of_an_open_month_is_left_as_it_was(closes):
    asked = request("2026-12-01")

    [kept] = locked_periods.apply(
        [asked], lambda _: closes, "book_in_open_period", TODAY, "month_close_job"
    )

    assert kept.tags == asked.tags and not closes.adjustments("2026-12")


def test_book_in_open_period_books_the_change_in_the_open_month_once(closes):
    asked = request("2026-11-03")

    [first] = locked_periods.apply([asked], lambda _: closes, "book_in_open_period", TODAY, "m")
    locked_periods.apply(
        [asked], lambda _: closes, "book_in_open_period", TODAY, "m"
    )  # re-read event

    assert first.tags["recon/booked_in"] == "2026-12"
    [booked] = closes.adjustments("2026-12")
    assert (booked["locked_month"], booked["events"]) == ("2026-11", "evt_1,evt_2")
    assert closes.is_locked("2026-11")


def test_book_in_open_period_makes_the_alert_say_where_it_was_booked(closes):
    [run] = locked_periods.apply(
        [request("2026-11-03")], lambda _: closes, "book_in_open_period", TODAY, "m"
    )

    text = late_events(run_late_events(run.tags))

    assert text.endswith(
        "2026-11 is locked and stays as closed: the change is booked in 2026-12 as a "
        "prior-period adjustment."
    )


def test_reopen_unlocks_the_month_reruns_the_day_and_closes_the_month_again(closes):
    asked = [request("2026-11-03", "a"), request("2026-11-09", "b")]

    out = locked_periods.apply(asked, lambda _: closes, "reopen", TODAY, "month_close_job")

    assert [r.partition_key for r in out] == ["2026-11-03", "2026-11-09", "2026-11-01"]
    assert out[-1].job_name == "month_close_job"
    assert not closes.is_locked("2026-11")
    [_, unlock] = closes.locks("2026-11")
    assert (unlock["actor"], unlock["reason"]) == (
        "stripe_late_changes",
        "late change: charge.refunded",
    )
    assert "re-opened and its close re-run" in late_events(run_late_events(out[0].tags))
