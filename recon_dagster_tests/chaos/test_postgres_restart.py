"""Case 2: PostgreSQL restarted (`pg_ctlcluster … restart`) under a sync and under a Dagster
materialization, with the payments table and the report store on it: each run completes or fails
with a clear error, no payment is inserted twice, and the sync audit agrees with the table."""

from __future__ import annotations

import time
from collections import Counter

import psycopg
import pytest

from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.stripe_server import StripeServer
from recon_dagster_tests.chaos.ledger import Entry
from recon_dagster_tests.chaos.scenes import (
    DAY,
    Product,
    charges,
    ids_in,
    materialize,
    payments_table,
    product_env,
    with_dagster_home,
)
from recon_dagster_tests.chaos.secrets import STRIPE_KEY, with_password
from recon_dagster_tests.chaos.servers import new_database
from recon_dagster_tests.chaos.store_checks import day_in_store

COUNT, RECORDED = 300, 100


@pytest.fixture
def world(private_postgres, case_dir):
    day = charges(DAY, COUNT)
    database = with_password(new_database(private_postgres.url))
    payments_table(database, day[:RECORDED])
    store_url = with_password(new_database(private_postgres.url))
    with StripeServer(day, api_key=STRIPE_KEY) as server:
        env = product_env(case_dir, server, database, RECON_REPORT_STORE_URL=store_url)
        yield (
            private_postgres,
            Product(case_dir, with_dagster_home(case_dir, env)),
            {c["id"] for c in day},
        )


def _rows(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("select count(*) from payments").fetchone()[0]


def test_a_restart_during_a_sync_inserts_each_payment_once_and_audits_it(world, ledger):
    cluster, product, stripe_ids = world
    entry = Entry("2. PostgreSQL restart")
    database = product.env["RECON_DATABASE_URL"]
    proc = product.start("sync", "--start", DAY.isoformat(), "--json", log="sync")
    deadline = time.monotonic() + 120
    while _rows(database) < RECORDED + 40:  # restart once the sync is inserting
        assert proc.poll() is None and time.monotonic() < deadline, "the sync never got going"
        time.sleep(0.05)
    cluster.restart()
    entry.faults += 1
    code = proc.wait(timeout=300)
    entry.runs += 1
    log = (product.root / "sync.log").read_text(errors="replace")
    # It completes (the inserts wait for the server), or fails saying so.
    entry.wrong_status += int(code not in (0, 2) or (code == 2 and "PostgreSQL" not in log))
    _, again = product.run_json("sync", "--start", DAY.isoformat(), log="sync_again")
    entry.runs += 1

    table = Counter(ids_in(database))
    entry.lost += len(stripe_ids - set(table))
    entry.doubled += sum(n - 1 for n in table.values())
    audit = ReportStore(product.env["RECON_REPORT_STORE_URL"]).sync_audit.history()
    inserted = Counter(a["payment_id"] for a in audit if a["result"] == "inserted")
    added = set(table) - {f"ch_c{i:04d}" for i in range(RECORDED)}
    entry.wrong_status += sum(1 for i in added if inserted[i] != 1) + sum(
        1 for i in inserted if i not in added
    )
    ledger.write(entry)
    assert (entry.lost, entry.doubled, entry.wrong_status) == (0, 0, 0), log[-3000:]
    assert again["synced"] == 0


def test_a_restart_during_a_materialization_fails_clearly_or_completes(world, ledger):
    cluster, product, _ = world
    entry = Entry("2. PostgreSQL restart")
    store = ReportStore(product.env["RECON_REPORT_STORE_URL"])
    for n, step in enumerate(("db_payments", "reconciliation_report")):
        log = product.root / f"run_{n}.log"
        proc = materialize(product.root, product.env, DAY.isoformat(), log=log.stem, wait=False)
        deadline = time.monotonic() + 180
        while f'Started execution of step "{step}"' not in (
            log.read_text(errors="replace") if log.exists() else ""
        ):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.02)
        cluster.restart()
        entry.faults += 1
        code = proc.wait(timeout=300)
        entry.runs += 1
        text = log.read_text(errors="replace")
        # A failed run names what failed; a completed one stored a whole report.
        if code != 0:
            entry.wrong_status += int("RUN_FAILURE" not in text or "Error" not in text)
        after = day_in_store(store, DAY)
        entry.wrong_status += after.partial + after.orphans
    done = materialize(product.root, product.env, DAY.isoformat(), log="run_after")
    entry.runs += 1
    final = day_in_store(store, DAY)
    entry.wrong_status += int(done.returncode != 0) + final.partial + final.orphans
    latest = store.latest(DAY)
    entry.lost += int(latest is None or len(latest.missing_in_database) != COUNT - RECORDED)
    ledger.write(entry)
    assert (entry.lost, entry.doubled, entry.wrong_status) == (0, 0, 0)
