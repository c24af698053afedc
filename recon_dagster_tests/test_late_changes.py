"""Late changes: Stripe's events after a day was reconciled re-open that day, once, and only days
that have a report; the new report version and the check say what changed."""

from __future__ import annotations

from datetime import date

import dagster as dg

from recon_dagster.definitions import build_definitions
from recon_dagster.sources.stripe_events import Cursor
from recon_dagster.stores.report_store import ReportStore
from recon_dagster_tests.scenario import at

D1, D2, D3 = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)


def sensor_tick(world, instance, cursor: str | None, monkeypatch):
    """One evaluation of `stripe_late_changes` as the daemon runs it, from the code location's own
    definitions and resources; returns (run requests, cursor)."""
    defs = build_definitions(world.use(monkeypatch))
    sensor = defs.resolve_sensor_def("stripe_late_changes")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def(),
                                      resources={"stripe": defs.resources["stripe"], "stripe_mirror": defs.resources["stripe_mirror"]})  # fmt: skip
    result = sensor.evaluate_tick(context)
    return result.run_requests, result.cursor


def reconciled(world, monkeypatch, instance, *days: date) -> None:
    for day in days:
        assert world.materialize(monkeypatch, day.isoformat(), instance=instance).success


def started(world, instance, monkeypatch) -> str:
    """The sensor's first tick: it starts reading events from now on."""
    requests, cursor = sensor_tick(world, instance, None, monkeypatch)
    assert requests == []
    return cursor


def test_a_refund_on_a_reconciled_day_reopens_that_day_only_and_a_second_tick_asks_nothing(world, monkeypatch, instance):
    world.sale("ch_1", 10_000, at(D1))
    world.sale("ch_2", 5_000, at(D2))
    reconciled(world, monkeypatch, instance, D1, D2)
    cursor = started(world, instance, monkeypatch)

    event = world.server.update_charge("ch_1", amount_refunded=10_000, refunded=True)
    [request], cursor = sensor_tick(world, instance, cursor, monkeypatch)
    again, _ = sensor_tick(world, instance, cursor, monkeypatch)

    assert request.partition_key == D1.isoformat()
    assert request.tags["recon/trigger"] == "late_change" and request.tags["recon/late_events"] == event["id"]
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
    replayed, _ = sensor_tick(world, instance, cursor, monkeypatch)  # a tick whose cursor was lost re-reads the event

    # Same run key: the daemon launches a run key once per sensor.
    assert [r.run_key for r in first] == [r.run_key for r in replayed] and len(first) == 1


def test_events_at_the_cursors_second_already_seen_are_skipped():
    cursor = Cursor(100, ("evt_a",))
    assert Cursor.loads(cursor.dumps()) == cursor
    assert cursor.advanced([]).seen == ("evt_a",)


def test_the_reopened_day_has_a_late_change_version_and_its_check_says_what_changed(world, monkeypatch, instance):
    world.sale("ch_1", 10_000, at(D1))
    world.sale("ch_2", 10_000, at(D1, 13))
    reconciled(world, monkeypatch, instance, D1)
    cursor = started(world, instance, monkeypatch)
    world.server.update_charge("ch_1", amount_refunded=10_000, refunded=True)  # the table never hears of it
    [request], _ = sensor_tick(world, instance, cursor, monkeypatch)

    run = world.materialize(monkeypatch, D1.isoformat(), instance=instance, tags=request.tags)

    assert run.success
    versions = ReportStore(world.environment()["RECON_REPORT_STORE_URL"]).versions(D1)
    assert [(v["version"], v["trigger"]) for v in versions] == [(2, "late_change"), (1, "manual")]
    assert [c["payment_id"] for c in versions[0]["changed"]] == ["ch_1"]
    [evaluation] = run.get_asset_check_evaluations()
    late = evaluation.metadata["late_change"].value
    assert (late["previous_grade"], late["grade"], late["events"]) == ("pass", "critical", [request.tags["recon/late_events"]])
    assert evaluation.description.startswith("Late change (pass -> critical)")
