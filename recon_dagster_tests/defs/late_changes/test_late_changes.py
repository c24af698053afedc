"""Late changes: Stripe's events after a day was reconciled re-open that day, once, and only days
that have a report; the new report version and the check say what changed."""

from __future__ import annotations

import time
from datetime import date, timedelta

import dagster as dg

from recon_dagster.alerts.payout_messages import build_payout_message
from recon_dagster.definitions import build_defs
from recon_dagster.defs.alerts.sensors import evaluation_figures
from recon_dagster.sources.stripe_events import Cursor
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.sensor_ticks import evaluate_tick
from recon_dagster.testing.stripe_server import (
    make_balance_transaction,
    make_payout,
    payout_transactions,
)
from recon_dagster_tests.support.scenario import at

D1, D2, D3 = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)


def evaluate(world, instance, cursor: str | None, monkeypatch):
    """One evaluation of `stripe_late_changes` in this world, as the daemon runs it."""
    return evaluate_tick(
        build_defs(world.use(monkeypatch)), "stripe_late_changes", instance, cursor
    )


def sensor_tick(world, instance, cursor: str | None, monkeypatch):
    """(run requests, cursor) of one evaluation."""
    result = evaluate(world, instance, cursor, monkeypatch)
    return result.run_requests, result.cursor


def reconciled(world, monkeypatch, instance, *days: date) -> None:
    for day in days:
        assert world.materialize(monkeypatch, day.isoformat(), instance=instance).success


def started(world, instance, monkeypatch) -> str:
    """The sensor's first tick: it starts reading events from now on."""
    requests, cursor = sensor_tick(world, instance, None, monkeypatch)
    assert requests == []
    return cursor


def test_a_refund_on_a_reconciled_day_reopens_that_day_only_and_a_second_tick_asks_nothing(
    world, monkeypatch, instance
):
    world.sale("ch_1", 10_000, at(D1))
    world.sale("ch_2", 5_000, at(D2))
    reconciled(world, monkeypatch, instance, D1, D2)
    cursor = started(world, instance, monkeypatch)

    event = world.server.update_charge("ch_1", amount_refunded=10_000, refunded=True)
    [request], cursor = sensor_tick(world, instance, cursor, monkeypatch)
    again, _ = sensor_tick(world, instance, cursor, monkeypatch)

    assert request.partition_key == D1.isoformat()
    assert (
        request.tags["recon/trigger"] == "late_change"
        and request.tags["recon/late_events"] == event["id"]
    )
    assert again == []


def test_an_event_for_a_day_never_materialized_requests_nothing(world, monkeypatch, instance):
    world.sale("ch_1", 10_000, at(D1))
    world.sale("ch_3", 5_000, at(D3))
    reconciled(world, monkeypatch, instance, D1)
    cursor = started(world, instance, monkeypatch)

    world.server.update_charge("ch_3", amount_refunded=5_000, refunded=True)
    requests, cursor_after = sensor_tick(world, instance, cursor, monkeypatch)

    assert requests == [] and cursor_after != cursor  # read, and not read again


def test_the_same_event_read_twice_reopens_the_day_once(world, monkeypatch, instance):
    world.sale("ch_1", 10_000, at(D1))
    reconciled(world, monkeypatch, instance, D1)
    cursor = started(world, instance, monkeypatch)
    world.server.update_charge("ch_1", amount_refunded=4_000)

    first, _ = sensor_tick(world, instance, cursor, monkeypatch)
    replayed, _ = sensor_tick(
        world, instance, cursor, monkeypatch
    )  # a tick whose cursor was lost re-reads the event

    # Same run key: the daemon launches a run key once per sensor.
    assert [r.run_key for r in first] == [r.run_key for r in replayed] and len(first) == 1


def test_events_at_the_cursors_second_already_seen_are_skipped():
    cursor = Cursor(100, ("evt_a",))
    assert Cursor.loads(cursor.dumps()) == cursor
    assert cursor.advanced([]).seen == ("evt_a",)


def test_a_quiet_account_read_every_tick_has_no_gap_however_old_its_last_event(
    world, monkeypatch, instance
):
    now = int(time.time())
    quiet = Cursor(
        now - 40 * 86_400, read_at=now - 300
    )  # the last event 40 days ago, read 5 minutes ago

    result = evaluate(world, instance, quiet.dumps(), monkeypatch)

    assert result.skip_message == "No new Stripe events."
    assert (
        Cursor.loads(result.cursor).read_at >= now
        and Cursor.loads(result.cursor).created == quiet.created
    )


def test_a_sensor_off_longer_than_stripes_retention_says_changes_may_be_lost(
    world, monkeypatch, instance
):
    off = Cursor(int(time.time()) - 40 * 86_400)  # last read 40 days ago

    result = evaluate(world, instance, off.dumps(), monkeypatch)

    assert (
        "more than Stripe's 30-day event retention ago" in result.skip_message
        and "recheck_recent_days" in result.skip_message
    )


def test_the_reopened_day_has_a_late_change_version_and_its_check_says_what_changed(
    world, monkeypatch, instance
):
    world.sale("ch_1", 10_000, at(D1))
    world.sale("ch_2", 10_000, at(D1, 13))
    reconciled(world, monkeypatch, instance, D1)
    cursor = started(world, instance, monkeypatch)
    world.server.update_charge(
        "ch_1", amount_refunded=10_000, refunded=True
    )  # the table never hears of it
    [request], _ = sensor_tick(world, instance, cursor, monkeypatch)

    run = world.materialize(monkeypatch, D1.isoformat(), instance=instance, tags=request.tags)

    assert run.success
    versions = ReportStore(world.environment()["RECON_REPORT_STORE_URL"]).versions(D1)
    assert [(v["version"], v["trigger"]) for v in versions] == [(2, "late_change"), (1, "manual")]
    assert [c["payment_id"] for c in versions[0]["changed"]] == ["ch_1"]
    [evaluation] = run.get_asset_check_evaluations()
    late = evaluation.metadata["late_change"].value
    assert (late["previous_grade"], late["grade"], late["events"]) == (
        "pass",
        "critical",
        [request.tags["recon/late_events"]],
    )
    assert evaluation.description.startswith("Late change (pass -> critical)")


# --- payouts: a payout that fails or moves after its day was reconciled ---------------------------


def payout_day(world, monkeypatch, instance, day: date) -> None:
    """`day`'s payouts reconciled through the payouts job, as its schedule would."""
    job = build_defs(world.use(monkeypatch)).resolve_job_def("payout_reconciliation_job")
    assert job.execute_in_process(instance=instance, partition_key=day.isoformat()).success


def with_payout(world, pid: str, day: date) -> None:
    """A paid automatic payout of one charge, arriving on `day`."""
    world.sale(f"ch_{pid}", 10_000, at(day - timedelta(days=2)))
    sold = int(at(day - timedelta(days=2)).timestamp())
    txn = make_balance_transaction(
        f"txn_ch_{pid}", 10_000, fee=320, source=f"ch_{pid}", payout=pid, created=sold
    )
    payout = make_payout(pid, txn["net"], arrival_date=int(at(day, 0).timestamp()))
    world.server.add_payouts([payout])
    world.server.add_balance_transactions([txn, payout_transactions(payout)])


def test_a_payout_failing_after_its_day_was_reconciled_reopens_its_arrival_date_in_the_payouts_job(
    world, monkeypatch, instance
):
    with_payout(world, "po_1", D2)
    payout_day(world, monkeypatch, instance, D2)
    cursor = started(world, instance, monkeypatch)

    event = world.server.update_payout("po_1", status="failed", failure_code="account_closed")
    [request], cursor = sensor_tick(world, instance, cursor, monkeypatch)
    again, _ = sensor_tick(world, instance, cursor, monkeypatch)

    assert (request.job_name, request.partition_key) == (
        "payout_reconciliation_job",
        D2.isoformat(),
    )
    assert (request.tags["recon/late_events"], request.tags["recon/late_event_types"]) == (
        event["id"],
        "payout.failed",
    )
    assert again == []


def test_a_payout_moved_to_another_arrival_date_reopens_both_dates_that_were_reconciled(
    world, monkeypatch, instance
):
    with_payout(world, "po_1", D2)
    payout_day(world, monkeypatch, instance, D2)
    payout_day(world, monkeypatch, instance, D3)
    cursor = started(world, instance, monkeypatch)

    world.server.update_payout("po_1", arrival_date=int(at(D3, 0).timestamp()))
    requests, _ = sensor_tick(world, instance, cursor, monkeypatch)

    assert sorted(r.partition_key for r in requests) == [D2.isoformat(), D3.isoformat()]


def test_a_payout_event_for_an_arrival_date_never_reconciled_requests_nothing(
    world, monkeypatch, instance
):
    with_payout(world, "po_1", D2)
    cursor = started(world, instance, monkeypatch)

    world.server.update_payout("po_1", status="failed", failure_code="account_closed")
    requests, _ = sensor_tick(world, instance, cursor, monkeypatch)

    assert requests == []


def test_the_reopened_payout_day_fails_its_check_and_says_it_is_a_late_change(
    world, monkeypatch, instance
):
    with_payout(world, "po_1", D2)
    payout_day(world, monkeypatch, instance, D2)
    cursor = started(world, instance, monkeypatch)
    world.server.update_payout("po_1", status="failed", failure_code="account_closed")
    [request], _ = sensor_tick(world, instance, cursor, monkeypatch)

    job = build_defs(world.use(monkeypatch)).resolve_job_def("payout_reconciliation_job")
    run = job.execute_in_process(instance=instance, partition_key=D2.isoformat(), tags=request.tags)

    [evaluation] = run.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.description.startswith("Late change (payout.failed): 1 payout(s); failed: 1")
    assert evaluation.metadata["late_change"].value["events"] == [request.tags["recon/late_events"]]
    message = build_payout_message(evaluation_figures(1, evaluation))
    assert message["text"].startswith(
        ":rotating_light: Late change: Payout reconciliation CRITICAL"
    )
    [late] = [f for f in message["attachments"][0]["fields"] if f["title"] == "Late change"]
    assert request.tags["recon/late_events"] in late["value"] and "payout.failed" in late["value"]
