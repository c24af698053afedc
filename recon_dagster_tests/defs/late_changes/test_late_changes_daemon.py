"""Late changes as a deployment sees them: dagster-daemon runs `stripe_late_changes` on a default
SQLite DAGSTER_HOME; a refund Stripe makes on a reconciled day re-opens that day alone, its new
report version and check say so, and later ticks ask for nothing more."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, time as time_of_day
from functools import partial

import pytest

from recon_dagster.sources.stripe_events import Cursor
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.deployment import Deployment, build_world, consecutive_days

INTERVAL = 2  # seconds between the sensor's ticks (RECON_LATE_CHANGES_INTERVAL_SECONDS)

# One deployment for the file (its world is built once, so every test runs on one xdist worker);
# each test has days of its own: the first three are the first test's, the fourth the second's.
pytestmark = pytest.mark.xdist_group("test_late_changes_daemon")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    world = build_world(
        tmp_path_factory.mktemp("late_changes"),
        consecutive_days(4),
        per_day=30,
        extra_env={"RECON_LATE_CHANGES_INTERVAL_SECONDS": str(INTERVAL)},
    )
    try:
        with Deployment(world) as dep:
            yield dep
    finally:
        world.stop()


def a_paid_charge_of(world, day: date) -> dict:
    start = int(datetime.combine(day, time_of_day(0), tzinfo=UTC).timestamp())
    return next(
        c
        for c in world.dataset.charges
        if start <= c["created"] < start + 86_400
        and c["status"] == "succeeded"
        and c["amount_captured"]
        and not c["amount_refunded"]
    )


def test_the_daemon_reopens_only_the_reconciled_day_stripe_changed_and_only_once(deployment):
    world = deployment.world
    first, second, never, _ = world.days
    deployment.materialize_at_once([first.isoformat(), second.isoformat()])

    def ticks() -> list:
        return deployment.sensor_ticks("stripe_late_changes")

    deployment.wait_for(lambda: len(ticks()) >= 1, 60, "the sensor's first tick")

    refunded = a_paid_charge_of(world, first)
    world.server.update_charge(
        refunded["id"], amount_refunded=refunded["amount_captured"], refunded=True
    )
    other = a_paid_charge_of(world, never)  # a day nobody reconciled yet
    world.server.update_charge(other["id"], amount_refunded=other["amount_captured"], refunded=True)
    store = ReportStore(world.env["RECON_REPORT_STORE_URL"])
    deployment.wait_for(
        lambda: len(store.versions(first)) == 2, 120, f"a second version of {first}"
    )
    settled = time.time()
    deployment.wait_for(
        lambda: sum(t["timestamp"] > settled for t in ticks()) >= 2, 60, "two more ticks"
    )

    [latest, earlier] = store.versions(first)
    assert (latest["trigger"], earlier["version"]) == ("late_change", 1)
    assert refunded["id"] in [c["payment_id"] for c in latest["changed"]]
    assert [v["version"] for v in store.versions(second)] == [1] and store.versions(never) == []

    # The report is saved before the check step evaluates it.
    def latest_evaluation() -> dict | None:
        [execution] = deployment.check_executions(
            "reconciliation_report", "discrepancy_within_tolerance", first.isoformat(), limit=1
        )
        return execution["evaluation"]

    deployment.wait_for(
        lambda: latest_evaluation() is not None, 120, f"the check of {first}'s new version"
    )
    assert latest_evaluation()["description"].startswith("Late change (")
    assert not [t for t in ticks() if t["status"] == "FAILURE"]


def test_the_same_event_read_twice_by_the_daemon_reopens_the_day_once(deployment):
    world = deployment.world
    day = world.days[3]
    started = time.time()
    deployment.materialize(day.isoformat())

    def ticks() -> list:
        return deployment.sensor_ticks("stripe_late_changes")

    deployment.wait_for(
        lambda: any(t["timestamp"] > started for t in ticks()), 60, "a tick of this test's"
    )
    before_refund = Cursor(int(time.time()) - 1).dumps()
    refunded = a_paid_charge_of(world, day)
    world.server.update_charge(
        refunded["id"], amount_refunded=refunded["amount_captured"], refunded=True
    )
    store = ReportStore(world.env["RECON_REPORT_STORE_URL"])
    deployment.wait_for(lambda: len(store.versions(day)) == 2, 120, f"a second version of {day}")
    [launched] = [t for t in ticks() if t["runIds"] and t["timestamp"] > started]

    def reread_after(moment: float) -> bool:
        return any(t["timestamp"] > moment and t["runKeys"] for t in ticks())

    # As if the cursor were lost: the event is read again. A tick already running when the cursor
    # is edited writes the cursor it computed over the edit when it ends (dagster's daemon saves
    # the tick's own cursor, as after a UI "Edit cursor"), so the edit is made again until a tick
    # that began after it has read the event.
    for attempt in range(4):
        deployment.set_sensor_cursor("stripe_late_changes", before_refund)
        reset = time.time()
        try:
            deployment.wait_for(
                partial(reread_after, reset),
                8 * INTERVAL,
                "a tick that re-reads the event",
            )
            break
        except AssertionError:
            if attempt == 3:
                raise
    deployment.wait_for(
        lambda: sum(t["timestamp"] > reset for t in ticks()) >= 2, 60, "one more tick"
    )

    [reread] = [t for t in ticks() if t["timestamp"] > reset and t["runKeys"]]
    assert (
        reread["runKeys"] == launched["runKeys"] and reread["runIds"] == []
    )  # the same run key, not launched again
    assert len(store.versions(day)) == 2
