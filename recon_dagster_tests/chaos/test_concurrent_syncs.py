"""Case 7: two `recon-dagster sync` processes on the same day and table at once, on each of the
four databases: each payment is inserted once, and the audit says which process inserted it."""

from __future__ import annotations

from collections import Counter

import pytest

from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.stripe_server import StripeServer
from recon_dagster_tests.chaos.ledger import Entry
from recon_dagster_tests.chaos.scenes import (
    DAY,
    Product,
    charges,
    ids_in,
    payments_table,
    product_env,
)
from recon_dagster_tests.chaos.secrets import STRIPE_KEY
from recon_dagster_tests.chaos.servers import new_database

ROUNDS = 1  # each round: a fresh day of missing payments, two syncs started together
PER_DAY, RECORDED = 60, 20


@pytest.fixture(params=["duckdb", "sqlite", "postgres", "mysql"])
def database_url(request, case_dir):
    kind = request.param
    if kind == "duckdb":
        return f"duckdb:///{case_dir / 'app.duckdb'}"
    if kind == "sqlite":
        return f"sqlite:///{case_dir / 'app.db'}"
    if kind == "postgres":
        return new_database(request.getfixturevalue("private_postgres").url)
    return request.getfixturevalue("mysql_database").url


def test_two_sync_processes_at_once_insert_each_payment_once(database_url, case_dir, ledger):
    entry = Entry("7. two syncs at once")
    days = [DAY.replace(day=DAY.day + r) for r in range(ROUNDS)]
    stripe = [charges(day, PER_DAY, prefix=f"ch_r{r}_") for r, day in enumerate(days)]
    payments_table(database_url, [c for day in stripe for c in day[:RECORDED]])
    with StripeServer([c for day in stripe for c in day], api_key=STRIPE_KEY) as server:
        product = Product(case_dir, product_env(case_dir, server, database_url))
        for r, day in enumerate(days):
            procs = [
                product.start("sync", "--start", day.isoformat(), "--json", log=f"sync_{r}_{p}")
                for p in range(2)
            ]
            entry.faults += 1
            entry.runs += 2
            codes = [p.wait(timeout=300) for p in procs]
            assert codes == [0, 0], [
                (case_dir / f"sync_{r}_{p}.log").read_text()[-2000:] for p in range(2)
            ]

    table = Counter(ids_in(database_url))
    stripe_ids = {c["id"] for day in stripe for c in day}
    entry.lost = len(stripe_ids - set(table))
    entry.doubled = sum(n - 1 for n in table.values())
    audit = ReportStore(product.env["RECON_REPORT_STORE_URL"]).sync_audit.history()
    inserted = Counter(a["payment_id"] for a in audit if a["result"] == "inserted")
    # The audit agrees with the table: each synced payment inserted by exactly one process.
    entry.wrong_status = sum(
        1 for i in stripe_ids if inserted[i] != (0 if i.endswith(_recorded_suffixes()) else 1)
    )
    ledger.write(entry)
    assert (entry.lost, entry.doubled, entry.wrong_status) == (0, 0, 0)
    assert len(table) == ROUNDS * PER_DAY


def _recorded_suffixes() -> tuple[str, ...]:
    return tuple(f"_{i:04d}" for i in range(RECORDED))
