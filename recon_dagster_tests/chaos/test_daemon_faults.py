"""Cases 4 and 5, through a real deployment (dagster-webserver and dagster-daemon on the repo's
SQLite instance): a 60-day backfill during which `dagster-daemon` is killed (`kill -9`) and
restarted, while Slack and PagerDuty refuse connections, then answer 500, then 429 with
Retry-After, then come back. Every day is materialized once, every check evaluated once, every
alert delivered once and in order per day; a resolve never goes out before its trigger."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest

from recon_dagster.testing.deployment import Deployment, World, free_port
from recon_dagster.testing.stripe_server import StripeServer
from recon_dagster_tests.chaos.ledger import Entry
from recon_dagster_tests.chaos.scenes import (
    charges,
    payments_table,
    product_env,
    record,
    with_dagster_home,
)
from recon_dagster_tests.chaos.secrets import ROUTING_KEY, SLACK_PATH, STRIPE_KEY
from recon_dagster_tests.support.receivers import Receiver, pagerduty_receiver, slack_receiver

pytestmark = pytest.mark.xdist_group("chaos_daemon")

DAYS = [date(2024, 3, 1) + timedelta(days=i) for i in range(60)]
PER_DAY = 6
CRITICAL = {DAYS[9], DAYS[33], DAYS[50]}  # half their payments missing from the table
INTERVAL = 2  # seconds between alert sensor ticks


class Flaky:
    """A receiver that can be down (connection refused) and come back on the same port."""

    def __init__(self, make) -> None:
        self.make, self.port = make, free_port()
        self.up()
        self.bodies: list[dict] = []

    def up(self) -> None:
        self.rx: Receiver | None = self.make(self.port)

    def down(self) -> None:
        if self.rx is not None:
            self.bodies += self.rx.bodies
            self.rx.close()
            self.rx = None

    def all_bodies(self) -> list[dict]:
        return self.bodies + (self.rx.bodies if self.rx else [])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def deployment(chaos_root):
    root = chaos_root / "daemon_faults"
    root.mkdir()
    stripe = [
        c for i, day in enumerate(DAYS) for c in charges(day, PER_DAY, prefix=f"ch_d{i:02d}_")
    ]
    recorded = [
        c
        for i, day in enumerate(DAYS)
        for c in charges(day, PER_DAY, prefix=f"ch_d{i:02d}_")[
            : PER_DAY // 2 if day in CRITICAL else PER_DAY
        ]
    ]
    database = f"duckdb:///{root / 'app.duckdb'}"
    payments_table(database, recorded)
    slack, pagerduty = Flaky(slack_receiver), Flaky(pagerduty_receiver)
    with StripeServer(stripe, api_key=STRIPE_KEY) as server:
        env = product_env(
            root,
            server,
            database,
            RECON_START_DATE=DAYS[0].isoformat(),
            SLACK_WEBHOOK_URL=f"{slack.url}{SLACK_PATH}",
            PAGERDUTY_ROUTING_KEY=ROUTING_KEY,
            PAGERDUTY_EVENTS_URL=f"{pagerduty.url}/v2/enqueue",
            RECON_ALERTS_INTERVAL_SECONDS=str(INTERVAL),
        )
        env = with_dagster_home(root, env)
        world = World(root=root, days=DAYS, dataset=None, server=server, env=env)  # type: ignore[arg-type]
        with Deployment(world) as dep:
            yield dep, slack, pagerduty, database
    slack.down()
    pagerduty.down()


def _instance(dep, monkeypatch) -> dg.DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", dep.world.env["DAGSTER_HOME"])
    return dg.DagsterInstance.get()


def test_a_backfill_survives_daemon_kills_and_receivers_down(deployment, ledger, monkeypatch):
    dep, slack, pagerduty, database = deployment
    daemon = Entry("5. daemon killed mid-backfill")
    alerts = Entry("4. Slack and PagerDuty down")
    slack.down()
    pagerduty.down()
    alerts.faults += 2
    backfill = dep.launch_asset_backfill(dep.world.partitions, title="chaos 60 days")
    dep.wait_for(lambda: dep.backfill(backfill)["runs"], 120, "the backfill's first run")
    dep.kill_daemon()
    daemon.faults += 1
    time.sleep(3 * INTERVAL)
    dep.wait_for(lambda: len(dep.backfill(backfill)["runs"]) >= 2, 240, "the second run")
    dep.kill_daemon()
    daemon.faults += 1
    # The receivers come back sick: 500s, then 429 with Retry-After, then well.
    for flaky in (slack, pagerduty):
        flaky.up()
        assert flaky.rx is not None
        flaky.rx.fail(500, 4)
        flaky.rx.fail(429, 2, retry_after="3")
        alerts.faults += 6
    state = dep.wait_backfill(backfill, 600)
    daemon.runs += len(state["runs"])
    assert state["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), state

    critical = {d.isoformat() for d in CRITICAL}
    dep.wait_for(
        lambda: (
            len(pagerduty.all_bodies()) >= len(critical)
            and len(slack.all_bodies()) >= len(critical)
        ),
        180,
        "every alert",
    )

    # A critical day repaired (its rows recorded) and re-run: its incident resolves, once, after
    # its trigger, while PagerDuty answers 500 first.
    fixed = DAYS[9]
    with duckdb.connect(database.removeprefix("duckdb:///")) as con:
        con.execute("delete from payments where stripe_charge_id like 'ch_d09_%'")
    record(database, charges(fixed, PER_DAY, prefix="ch_d09_"))
    assert pagerduty.rx is not None
    pagerduty.down()
    alerts.faults += 1
    dep.materialize(fixed.isoformat())
    alerts.runs += 1
    time.sleep(3 * INTERVAL)
    pagerduty.up()
    assert pagerduty.rx is not None
    pagerduty.rx.fail(500, 2)
    alerts.faults += 2
    dep.wait_for(lambda: len(pagerduty.all_bodies()) >= len(critical) + 1, 120, "the resolve")
    time.sleep(3 * INTERVAL)  # a few more ticks: nothing may come twice

    with _instance(dep, monkeypatch) as instance:
        report = dg.AssetKey("reconciliation_report")
        materialized = Counter(
            r.partition_key for r in instance.fetch_materializations(report, limit=1000).records
        )
        check = dg.AssetCheckKey(report, "discrepancy_within_tolerance")
        evaluated = Counter(
            r.evaluation.partition
            for r in instance.event_log_storage.get_asset_check_execution_history(check, limit=1000)
            if r.evaluation is not None
        )
    alerts.faults -= sum(len(f.rx.script) for f in (slack, pagerduty) if f.rx)  # never met
    wanted = Counter(dep.world.partitions) + Counter([fixed.isoformat()])
    daemon.lost = sum((wanted - materialized).values()) + sum((wanted - evaluated).values())
    daemon.doubled = sum((materialized - wanted).values()) + sum((evaluated - wanted).values())

    events = [(b["dedup_key"], b["event_action"]) for b in pagerduty.all_bodies()]
    triggers = Counter(k for k, a in events if a == "trigger")
    key = lambda d: f"billing-reconciliation-{d}"  # noqa: E731
    alerts.lost = sum(1 for d in critical if triggers[key(d)] == 0)
    alerts.doubled = sum(n - 1 for n in triggers.values() if n > 1)
    order = [a for k, a in events if k == key(fixed.isoformat())]
    alerts.wrong_status = int(order != ["trigger", "resolve"])
    slack_days = Counter(b["attachments"][0]["fields"][0]["value"] for b in slack.all_bodies())
    alerts.lost += sum(1 for d in critical if slack_days[d] == 0)
    alerts.doubled += sum(n - 1 for n in slack_days.values() if n > 1)
    alerts.runs = daemon.runs + 1
    # For the secrets scan: every body as sent, except PagerDuty's `routing_key` field, which is
    # how the Events API takes its credential (as Stripe takes its key in a header).
    assert {b.get("routing_key") for b in pagerduty.all_bodies()} == {ROUTING_KEY}
    (dep.world.root / "alert_bodies.json").write_text(
        json.dumps(
            {
                "slack": slack.all_bodies(),
                "pagerduty": [
                    {k: v for k, v in b.items() if k != "routing_key"}
                    for b in pagerduty.all_bodies()
                ],
            }
        )
    )
    ledger.write(daemon)
    ledger.write(alerts)
    print(f"PagerDuty {events}; Slack {dict(slack_days)}; runs {daemon.runs}")
    assert (daemon.lost, daemon.doubled) == (0, 0), (wanted - materialized, materialized - wanted)
    assert (alerts.lost, alerts.doubled, alerts.wrong_status) == (0, 0, 0), events
