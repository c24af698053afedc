"""Payouts and their balance transactions read from a Stripe mirror in real PostgreSQL: the same
report as from the API in both layouts, a stale mirror warned about, a broken row named."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time

import duckdb
import psycopg
import pytest

from recon_dagster import Settings, create_billing_reconciliation_service
from recon_dagster.testing.mirror import (
    LAYOUTS,
    create_mirror,
    load_balance_transactions,
    load_charges,
    load_payouts,
)
from recon_dagster.testing.sensor_ticks import late_changes_tick
from recon_dagster.testing.stripe_server import (
    PAYOUT_FIELD,
    make_balance_transaction,
    make_charge,
    make_payout,
    payout_transactions,
)
from recon_dagster_tests.support.scenario import API_KEY

DAY = date(2024, 7, 10)
SOLD = int(datetime(2024, 7, 8, 12, tzinfo=UTC).timestamp())
FRESH = datetime(2024, 7, 13, tzinfo=UTC)  # days after DAY ended: the mirror has caught up


def payout(
    pid: str, charges: list[tuple[str, str, int]], *, extra: int = 0, **kwargs
) -> tuple[dict, list[dict]]:
    """A payout of (txn id, charge id, amount) charges with Stripe's fee; `extra` puts its amount
    off."""
    txns = [
        make_balance_transaction(
            tid, amount, fee=amount * 29 // 1000 + 30, source=cid, payout=pid, created=SOLD
        )
        for tid, cid, amount in charges
    ]
    arrival = int(datetime.combine(DAY, time(0), tzinfo=UTC).timestamp())
    made = make_payout(pid, sum(t["net"] for t in txns) + extra, arrival_date=arrival, **kwargs)
    return made, [*txns, payout_transactions(made)]


@pytest.fixture
def world(tmp_path, serve, postgres_url):
    """Four payouts arriving on DAY (reconciled, off by 1.00 with an unrecorded charge, failed,
    manual) on the local Stripe server, and a payments table; tests add a mirror of the same
    objects."""
    charges = [
        make_charge(cid, amount, created=SOLD, payment_intent=f"pi_{cid}")
        for cid, amount in (("ch_a", 10_000), ("ch_b", 5_000), ("ch_c", 2_500), ("ch_e", 4_000))
    ]
    ok, ok_txns = payout(
        "po_ok", [("txn_a", "ch_a", 10_000), ("txn_b", "ch_b", 5_000)], trace_id="TRACE-1"
    )
    off, off_txns = payout("po_off", [("txn_c", "ch_c", 2_500)], extra=100)
    failed, failed_txns = payout(
        "po_failed", [("txn_e", "ch_e", 4_000)], status="failed", failure_code="account_closed"
    )
    manual = make_payout("po_manual", 7_777, arrival_date=ok["arrival_date"], automatic=False)
    payouts, txns = [ok, off, failed, manual], ok_txns + off_txns + failed_txns
    server = serve(charges, api_key=API_KEY, payouts=payouts, balance_transactions=txns)
    db = tmp_path / "app.duckdb"
    with duckdb.connect(str(db)) as con:  # ch_a under its PaymentIntent id; ch_c never recorded
        con.execute(
            "create table payments (stripe_charge_id varchar, amount bigint, currency varchar, "
            "status varchar, created_at timestamptz)"
        )
        con.executemany(
            "insert into payments values (?, ?, 'USD', 'succeeded', ?)",
            [
                ("pi_ch_a", 10_000, datetime(2024, 7, 8, 12, tzinfo=UTC)),
                ("ch_b", 5_000, datetime(2024, 7, 8, 12, tzinfo=UTC)),
                ("ch_e", 4_000, datetime(2024, 7, 8, 12, tzinfo=UTC)),
            ],
        )
    env = {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_DATABASE_URL": f"duckdb:///{db}",
        "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
        "RECON_MIRROR_SPOT_CHECK": "0",
    }
    schema = f"mirror_{uuid.uuid4().hex[:10]}"
    yield {
        "env": env,
        "charges": charges,
        "payouts": payouts,
        "txns": txns,
        "schema": schema,
        "url": postgres_url,
        "root": tmp_path,
    }
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def mirror(world, layout: str, *, payouts=None, synced_at=FRESH) -> None:
    create_mirror(world["url"], world["schema"], layout)
    load_charges(world["url"], world["schema"], layout, world["charges"], synced_at)
    load_payouts(world["url"], world["schema"], layout, payouts or world["payouts"], synced_at)
    if layout == "data_pipeline":
        load_balance_transactions(
            world["url"], world["schema"], world["txns"], synced_at, PAYOUT_FIELD
        )


def reconcile_payouts(world, *, from_mirror: bool, **env):
    source = (
        {"RECON_STRIPE_SOURCE": world["url"], "RECON_STRIPE_MIRROR_SCHEMA": world["schema"]}
        if from_mirror
        else {}
    )
    settings = Settings.from_env({**world["env"], **source, **env}, base_dir=world["root"])
    return create_billing_reconciliation_service(settings).reconcile_payouts(DAY)


def deployed(world, monkeypatch, **env):
    """The code location's definitions, as a deployment reading the mirror (this world's settings in
    the process environment, the project folder as the working directory) builds them."""
    from recon_dagster.definitions import build_defs

    for name, value in {
        **world["env"],
        "RECON_STRIPE_SOURCE": world["url"],
        "RECON_STRIPE_MIRROR_SCHEMA": world["schema"],
        "RECON_START_DATE": "2024-07-01",
        **env,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(world["root"])
    return build_defs(Settings.from_env())


def report(result, *, without_trace_ids: bool = False) -> dict:
    out = {k: v for k, v in result.to_json_dict().items() if k != "stripe_source"}
    if without_trace_ids:
        out["payouts"] = [{k: v for k, v in p.items() if k != "trace_id"} for p in out["payouts"]]
    return out


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_mirror_gives_the_same_payout_report_as_the_api(world, layout):
    mirror(world, layout)

    from_api = reconcile_payouts(world, from_mirror=False)
    from_mirror = reconcile_payouts(world, from_mirror=True)

    # stripe-sync-engine keeps no trace ids (a bank reference still matches on the payout id).
    sync_engine = layout == "sync_engine"
    assert report(from_mirror, without_trace_ids=sync_engine) == report(
        from_api, without_trace_ids=sync_engine
    )
    assert [p.trace_id for p in from_mirror.payouts if p.id == "po_ok"] == [
        None if sync_engine else "TRACE-1"
    ]
    assert from_api.status == "problems" and from_api.counts()["itemization_mismatch"] == 1
    assert from_mirror.stripe_source == (
        "mirror:data_pipeline"
        if layout == "data_pipeline"
        else "mirror:sync_engine (balance transactions from the API)"
    )


def test_payouts_read_from_the_mirror_do_not_ask_the_api(world):
    mirror(world, "data_pipeline")
    dead_api = {
        "STRIPE_API_BASE": "http://127.0.0.1:1"
    }  # nothing listens there: any API call would fail the run

    result = reconcile_payouts(world, from_mirror=True, **dead_api)

    assert result.error is None and {p.id for p in result.payouts} == {
        "po_ok",
        "po_off",
        "po_failed",
        "po_manual",
    }
    assert next(p for p in result.payouts if p.id == "po_ok").trace_id == "TRACE-1"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_mirror_that_has_not_caught_up_makes_the_payouts_a_warning_that_names_the_time(
    world, layout
):
    mirror(
        world, layout, synced_at=datetime(2024, 7, 11, 0, 30, tzinfo=UTC)
    )  # 30 min after DAY ended; the lag is 60

    result = reconcile_payouts(world, from_mirror=True)

    assert result.source_note.startswith(
        "the Stripe mirror has not caught up to 2024-07-11T00:00:00+00:00"
    )
    assert "payouts of the day may be missing" in result.source_note
    assert result.to_json_dict()["source_note"] == result.source_note


def test_a_caught_up_mirror_with_reconciled_payouts_passes(world):
    mirror(world, "data_pipeline", payouts=[p for p in world["payouts"] if p["id"] == "po_ok"])

    result = reconcile_payouts(world, from_mirror=True)

    assert (result.status, result.severity(), result.source_note) == ("reconciled", "pass", None)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_mirror_payout_that_disagrees_with_the_api_is_named_and_an_error(world, layout):
    stale = [
        dict(p, status="in_transit") if p["id"] == "po_failed" else p for p in world["payouts"]
    ]  # missed the failure
    mirror(world, layout, payouts=stale)

    result = reconcile_payouts(world, from_mirror=True, RECON_MIRROR_SPOT_CHECK="50")

    assert result.source_mismatches == ("po_failed",)
    assert (result.status, result.severity()) == ("problems", "error")
    assert result.to_json_dict()["source_mismatches"] == ["po_failed"]


def test_a_mirror_that_agrees_with_the_api_passes_the_spot_check(world):
    mirror(world, "data_pipeline", payouts=[p for p in world["payouts"] if p["id"] == "po_ok"])

    result = reconcile_payouts(world, from_mirror=True, RECON_MIRROR_SPOT_CHECK="50")

    assert (result.source_mismatches, result.severity()) == ((), "pass")


def test_a_mirror_payout_with_a_null_amount_is_an_error_naming_the_row_and_field(world):
    broken = [dict(p, amount=None) if p["id"] == "po_off" else p for p in world["payouts"]]
    mirror(world, "sync_engine", payouts=broken)

    result = reconcile_payouts(world, from_mirror=True)

    assert result.status == "error"
    assert (
        result.error
        == f"Stripe mirror {world['schema']}.payouts: Payout 'po_off' has amount None: expected an "
        "integer"
    )


def test_a_mirror_without_a_payouts_table_reads_payouts_from_the_api(world):
    create_mirror(world["url"], world["schema"], "data_pipeline")
    with psycopg.connect(world["url"], autocommit=True) as conn:
        conn.execute(f'DROP TABLE "{world["schema"]}".payouts')

    result = reconcile_payouts(world, from_mirror=True)

    assert result.stripe_source == "api (the Stripe mirror keeps no payouts)"
    assert report(result) == report(reconcile_payouts(world, from_mirror=False))


def test_the_payouts_job_reads_a_stale_mirror_and_its_check_warns(world, instance, monkeypatch):
    mirror(
        world,
        "data_pipeline",
        payouts=[p for p in world["payouts"] if p["id"] == "po_ok"],
        synced_at=datetime(2024, 7, 11, 0, 30, tzinfo=UTC),
    )
    defs = deployed(world, monkeypatch, STRIPE_API_BASE="http://127.0.0.1:1")

    run = defs.resolve_job_def("payout_reconciliation_job").execute_in_process(
        instance=instance, partition_key=DAY.isoformat()
    )

    assert run.success
    [materialization] = run.asset_materializations_for_node("stripe_payouts")
    assert materialization.metadata["stripe_source"].value == "mirror:data_pipeline"
    [evaluation] = run.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert (
        "the Stripe mirror has not caught up to 2024-07-11T00:00:00+00:00" in evaluation.description
    )


def test_the_payouts_check_names_the_payouts_the_mirror_gets_wrong(world, instance, monkeypatch):
    wrong = [
        dict(p, amount=p["amount"] + 1) if p["id"] == "po_ok" else p
        for p in world["payouts"]
        if p["id"] == "po_ok"
    ]
    mirror(world, "data_pipeline", payouts=wrong)
    defs = deployed(world, monkeypatch, RECON_MIRROR_SPOT_CHECK="50")

    run = defs.resolve_job_def("payout_reconciliation_job").execute_in_process(
        instance=instance, partition_key=DAY.isoformat()
    )

    [evaluation] = run.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert (
        "The Stripe mirror disagrees with the Stripe API on 1 payout(s): po_ok."
        in evaluation.description
    )
    assert evaluation.metadata["source_mismatches"].value == ["po_ok"]


def test_a_payout_synced_again_after_its_day_was_reconciled_reopens_that_arrival_date(
    world, instance, monkeypatch
):
    mirror(world, "data_pipeline")
    defs = deployed(world, monkeypatch)
    assert (
        defs.resolve_job_def("payout_reconciliation_job")
        .execute_in_process(instance=instance, partition_key=DAY.isoformat())
        .success
    )

    def tick(cursor):
        return late_changes_tick(defs, instance, cursor)

    _, cursor = tick(None)
    with psycopg.connect(
        world["url"], autocommit=True
    ) as conn:  # the bank returned po_ok; the mirror copies it a moment later
        conn.execute(
            f"UPDATE \"{world['schema']}\".payouts SET status = 'failed', failure_code = "
            "'account_closed', "
            "_updated_at = now() + interval '1 second' WHERE id = 'po_ok'"
        )
    [request], cursor = tick(cursor)
    again, _ = tick(cursor)

    assert (request.job_name, request.partition_key, request.tags["recon/trigger"]) == (
        "payout_reconciliation_job",
        DAY.isoformat(),
        "late_change",
    )
    assert request.tags["recon/late_events"] == "mirror:po_ok" and again == []
