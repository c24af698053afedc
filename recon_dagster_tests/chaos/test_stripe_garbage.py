"""Case 6: Stripe answering with garbage: a JSON page cut in half, a proxy's HTML error page, a
200 whose charge lacks `amount`, an answer slower than the timeout, a connection reset mid-page.

Once, each is survived (retried, or the bad charge set apart and named); persistently, the day
fails with an error naming the request. Never does a day report success on partial data.
"""

from __future__ import annotations

import dagster as dg
import pytest

from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.stripe_server import GARBAGE, StripeServer
from recon_dagster_tests.chaos.ledger import Entry
from recon_dagster_tests.chaos.scenes import (
    DAY,
    Product,
    charges,
    materialize,
    payments_table,
    product_env,
    with_dagster_home,
)
from recon_dagster_tests.chaos.secrets import STRIPE_KEY

COUNT = 250  # three pages
PERSISTENT = 40  # more than every retry of every request of the day
REQUEST = f"while listing charges created in [{DAY.isoformat()}T00:00:00+00:00"
CAUSE = {
    "truncated": "sent an unreadable response (HTTP 200)",
    "html": "not Stripe's JSON",
    "slow": "ReadTimeout",
    "reset": "ChunkedEncodingError",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, chaos_root):
    root = chaos_root / "stripe_garbage"
    root.mkdir()
    day = charges(DAY, COUNT)
    database = f"duckdb:///{root / 'app.duckdb'}"
    payments_table(database, day)
    with StripeServer(day, api_key=STRIPE_KEY) as server:
        server.slow_seconds = 2.5
        env = product_env(
            root,
            server,
            database,
            STRIPE_TIMEOUT_SECONDS="1",
            STRIPE_MAX_NETWORK_RETRIES="2",
        )
        yield root, server, Product(root, with_dagster_home(root, env))


def _judge(entry: Entry, kind: str, code: int, out: dict) -> None:
    """Tally one reconcile: a result must hold every charge (or name the one it set apart);
    an error must name the request and its cause."""
    entry.runs += 1
    if out["status"] == "error":
        named = REQUEST in out["error"] and CAUSE.get(kind, "") in out["error"]
        entry.wrong_status += int(code != 2 or not named)
        return
    invalid = [r["id"] for r in out["invalid_rows"]]
    entry.lost += COUNT - out["stripe_count"] - len(invalid)
    entry.doubled += max(0, out["stripe_count"] - COUNT)
    if kind == "missing_field":
        # The charge is set apart and named, and the day is not a success.
        entry.wrong_status += int(len(invalid) == 0 or out["status"] == "success" or code == 0)
    else:
        entry.wrong_status += int(out["status"] != "success" or code != 0)


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_from_stripe_is_retried_or_named_never_reported_as_success(kind, world, ledger):
    root, server, product = world
    entry = Entry("6. Stripe garbage")
    for count in (1, PERSISTENT):
        server.garble_next(kind, count)
        code, out = product.run_json("reconcile", "--start", DAY.isoformat(), log=f"{kind}{count}")
        entry.faults += count - server.clear_faults()  # the ones requests met
        _judge(entry, kind, code, out)
        if count == 1 and kind != "missing_field":
            assert out["status"] == "success", out  # one bad answer is retried
    stored = ReportStore(product.env["RECON_REPORT_STORE_URL"]).latest(DAY)
    assert stored is None or stored.status != "success" or stored.stripe_count == COUNT
    ledger.write(entry)
    assert (entry.lost, entry.doubled, entry.wrong_status) == (0, 0, 0)


@pytest.mark.parametrize("kind", ["reset", "missing_field"])
def test_a_dagster_run_on_garbage_fails_or_fails_its_check(kind, world, ledger, monkeypatch):
    root, server, product = world
    entry = Entry("6. Stripe garbage")
    count = PERSISTENT if kind == "reset" else 1
    server.garble_next(kind, count)
    proc = materialize(root, product.env, DAY.isoformat(), log=f"dagster_{kind}")
    entry.faults += count - server.clear_faults()
    entry.runs += 1
    monkeypatch.setenv("DAGSTER_HOME", product.env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        report = dg.AssetKey("reconciliation_report")
        check = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(report, "discrepancy_within_tolerance"), limit=1
        )
        evaluation = check[0].evaluation if check and check[0].run_id == run.run_id else None
        log = (root / f"dagster_{kind}.log").read_text(errors="replace")
        if kind == "reset":
            # The run fails naming the request; no report of the day is materialized by it.
            materialized = instance.fetch_materializations(report, limit=10).records
            entry.wrong_status += int(
                run.status != dg.DagsterRunStatus.FAILURE
                or proc.returncode == 0
                or REQUEST not in log
                or any(m.run_id == run.run_id for m in materialized)
            )
        else:
            # The run succeeds with the bad charge set apart and named; its check does not pass.
            entry.wrong_status += int(evaluation is None or evaluation.passed)
    ledger.write(entry)
    assert entry.wrong_status == 0, log[-3000:]
