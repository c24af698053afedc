"""A Stripe mirror in real PostgreSQL as the source of charges, in both layouts: the same findings
as the API, and a stale or wrong mirror caught."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl
import psycopg
import pytest

from recon_dagster import Settings, create_billing_reconciliation_service
from recon_dagster.core.grading import grade
from recon_dagster.settings import ConfigError
from recon_dagster.sources import stripe_mirror
from recon_dagster.testing.mirror import LAYOUTS, create_mirror, load_charges, load_disputes
from recon_dagster.testing.sensor_ticks import late_changes_tick
from recon_dagster.testing.stripe_server import make_charge, make_dispute
from recon_dagster_tests.support.scenario import API_KEY, at

DAY = date(2024, 5, 1)
FRESH = datetime(2024, 5, 3, tzinfo=UTC)  # two days after DAY ended: the mirror has caught up


def day_charges() -> tuple[list[dict], list[dict]]:
    """One charge per story: recorded, lost, recorded with another amount, refunded, disputed
    (lost)."""
    charges = [
        make_charge(cid, amount, created=int(at(DAY, hour).timestamp()), amount_refunded=refunded)
        for cid, amount, hour, refunded in (
            ("ch_ok", 1_000, 9, 0),
            ("ch_lost", 2_000, 10, 0),
            ("ch_diff", 3_000, 11, 0),
            ("ch_refund", 4_000, 12, 4_000),
            ("ch_dispute", 5_000, 13, 0),
        )
    ]
    charges[-1]["disputed"] = True
    disputes = [
        make_dispute(
            "dp_1", "ch_dispute", 5_000, "usd", status="lost", created=int(at(DAY, 14).timestamp())
        )
    ]
    return charges, disputes


@pytest.fixture
def world(tmp_path, serve, postgres_url):
    """The API (the local Stripe server) and a payments table; tests add a mirror."""
    charges, disputes = day_charges()
    server = serve(charges, api_key=API_KEY, disputes=disputes)
    db = tmp_path / "app.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table payments (stripe_charge_id varchar, amount bigint, currency varchar, "
            "status varchar, "
            "created_at timestamptz, amount_refunded bigint)"
        )
        con.executemany(
            "insert into payments values (?, ?, 'USD', 'succeeded', ?, 0)",
            [
                ("ch_ok", 1_000, at(DAY, 9)),
                ("ch_diff", 2_900, at(DAY, 11)),
                ("ch_refund", 4_000, at(DAY, 12)),
                ("ch_dispute", 5_000, at(DAY, 13)),
            ],
        )
    env = {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_DATABASE_URL": f"duckdb:///{db}",
        "RECON_PAYMENTS_REFUNDED_COLUMN": "amount_refunded",
        "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
    }
    schema = f"mirror_{uuid.uuid4().hex[:10]}"
    yield {
        "env": env,
        "charges": charges,
        "disputes": disputes,
        "schema": schema,
        "url": postgres_url,
        "root": tmp_path,
    }
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def mirror(world, layout: str, *, charges=None, synced_at=FRESH) -> None:
    create_mirror(world["url"], world["schema"], layout)
    load_charges(world["url"], world["schema"], layout, charges or world["charges"], synced_at)
    load_disputes(world["url"], world["schema"], layout, world["disputes"], synced_at)


def reconcile(world, **env):
    settings = Settings.from_env({**world["env"], **env}, base_dir=world["root"])
    return create_billing_reconciliation_service(settings).reconcile(DAY)


def findings(result) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in result.findings:
        out.setdefault(f.kind, []).append(f.payment_id)
    return out


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_mirror_gives_the_same_findings_and_totals_as_the_api(world, layout):
    mirror(world, layout)

    from_api = reconcile(world)
    from_mirror = reconcile(
        world, RECON_STRIPE_SOURCE=world["url"], RECON_STRIPE_MIRROR_SCHEMA=world["schema"]
    )

    assert findings(from_mirror) == findings(from_api) != {}
    assert from_mirror.totals == from_api.totals
    assert (from_api.stripe_source, from_mirror.stripe_source) == ("api", f"mirror:{layout}")
    assert (from_mirror.source_note, from_mirror.source_mismatches) == (None, ())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_mirror_that_has_not_caught_up_warns_and_names_the_time(world, layout):
    mirror(
        world, layout, synced_at=datetime(2024, 5, 2, 0, 30, tzinfo=UTC)
    )  # 30 min after the day ended; the lag is 60

    result = reconcile(
        world,
        RECON_STRIPE_SOURCE=world["url"],
        RECON_STRIPE_MIRROR_SCHEMA=world["schema"],
        RECON_MIRROR_SPOT_CHECK="0",
    )

    assert result.source_note.startswith(
        "the Stripe mirror has not caught up to 2024-05-02T00:00:00+00:00"
    )
    settings = Settings.from_env({})
    assert grade(result, settings.tolerance_percent, settings.critical_percent) != "pass"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_mirror_row_that_disagrees_with_the_api_is_named_and_critical(world, layout):
    wrong = [
        dict(c, amount_refunded=0) if c["id"] == "ch_refund" else c for c in world["charges"]
    ]  # missed the refund
    mirror(world, layout, charges=wrong)

    result = reconcile(
        world, RECON_STRIPE_SOURCE=world["url"], RECON_STRIPE_MIRROR_SCHEMA=world["schema"]
    )

    assert result.source_mismatches == ("ch_refund",)
    settings = Settings.from_env({})
    assert grade(result, settings.tolerance_percent, settings.critical_percent) == "critical"


def test_a_schema_without_a_charges_table_is_a_clear_error(world):
    with pytest.raises(
        ConfigError,
        match=rf"^RECON_STRIPE_MIRROR_SCHEMA: no table {world['schema']}\.charges in the Stripe "
        r"mirror",
    ):
        reconcile(
            world, RECON_STRIPE_SOURCE=world["url"], RECON_STRIPE_MIRROR_SCHEMA=world["schema"]
        )


def test_an_unreachable_mirror_names_the_variable_without_the_password(world):
    with pytest.raises(
        ConfigError,
        match=r"^RECON_STRIPE_SOURCE: cannot connect to the Stripe mirror at "
        r"postgresql://app:\*\*\*@127\.0\.0\.1:1/",
    ) as caught:
        reconcile(world, RECON_STRIPE_SOURCE="postgresql://app:hunter2-secret@127.0.0.1:1/stripe")
    assert "hunter2-secret" not in str(caught.value)


def test_a_mirror_row_with_a_null_amount_is_an_invalid_row(world):
    broken = [dict(c, amount=None) if c["id"] == "ch_ok" else c for c in world["charges"]]
    mirror(world, "data_pipeline", charges=broken)

    result = reconcile(
        world,
        RECON_STRIPE_SOURCE=world["url"],
        RECON_STRIPE_MIRROR_SCHEMA=world["schema"],
        RECON_MIRROR_SPOT_CHECK="0",
    )

    [row] = [f for f in result.findings if f.kind == "invalid_rows" and f.source == "stripe"]
    assert row.payment_id == "ch_ok" and "'amount' is null" in row.detail


@pytest.mark.parametrize("batch_bytes", [1, 40, 1 << 20])
def test_a_day_read_in_many_copy_batches_is_the_day_read_in_one(world, monkeypatch, batch_bytes):
    """COPY's CSV is parsed in batches cut at line ends; a field holding a line break (quoted by
    PostgreSQL) is never cut, and no row is lost or read twice."""
    odd = [
        dict(c, customer='cus_line\nbreak, "quoted"') if c["id"] == "ch_diff" else c
        for c in world["charges"]
    ]
    mirror(world, "data_pipeline", charges=odd)
    source = stripe_mirror.detect(world["url"], world["schema"])
    window = (at(DAY, 0), at(DAY, 0) + timedelta(days=1))
    whole = stripe_mirror.fetch_charges(source, *window)

    monkeypatch.setattr(stripe_mirror, "COPY_BATCH_BYTES", batch_bytes)
    batched = stripe_mirror.fetch_charges(source, *window)

    assert batched.sort("id").equals(whole.sort("id"))
    assert batched.height == len(odd)
    [customer] = batched.filter(pl.col("id") == "ch_diff").get_column("customer").to_list()
    assert customer == 'cus_line\nbreak, "quoted"'


def test_the_api_path_is_unchanged_without_a_mirror(world):
    result = reconcile(world)
    assert (result.stripe_source, result.source_note) == ("api", None)
    assert sorted(findings(result)["missing_in_database"]) == ["ch_lost"]


def test_the_daily_job_reads_a_stale_mirror_records_its_sync_time_and_warns(
    world, instance, monkeypatch
):
    mirror(world, "sync_engine", synced_at=datetime(2024, 5, 2, 0, 30, tzinfo=UTC))
    for name, value in {
        **world["env"],
        "RECON_STRIPE_SOURCE": world["url"],
        "RECON_STRIPE_MIRROR_SCHEMA": world["schema"],
        "RECON_START_DATE": "2024-04-01",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(world["root"])
    from recon_dagster.definitions import build_defs

    run = (
        build_defs(Settings.from_env())
        .resolve_job_def("daily_reconciliation")
        .execute_in_process(instance=instance, partition_key=DAY.isoformat())
    )

    assert run.success
    [materialization] = [m for m in run.asset_materializations_for_node("stripe_charges")]
    assert materialization.metadata["mirror_synced_at"].value == "2024-05-02T00:30:00+00:00"
    assert materialization.metadata["stripe_source"].value == "mirror:sync_engine"
    [evaluation] = run.get_asset_check_evaluations()
    assert (
        not evaluation.passed
        and "the Stripe mirror has not caught up to 2024-05-02T00:00:00+00:00"
        in evaluation.description
    )


def test_a_mirror_row_synced_again_after_the_report_reopens_its_day(world, instance, monkeypatch):
    mirror(world, "data_pipeline")
    for name, value in {
        **world["env"],
        "RECON_STRIPE_SOURCE": world["url"],
        "RECON_STRIPE_MIRROR_SCHEMA": world["schema"],
        "RECON_START_DATE": "2024-04-01",
        "RECON_MIRROR_SPOT_CHECK": "0",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(world["root"])
    from recon_dagster.definitions import build_defs

    defs = build_defs(Settings.from_env())
    assert (
        defs.resolve_job_def("daily_reconciliation")
        .execute_in_process(instance=instance, partition_key=DAY.isoformat())
        .success
    )

    def tick(cursor):
        return late_changes_tick(defs, instance, cursor)

    _, cursor = tick(None)
    with psycopg.connect(
        world["url"], autocommit=True
    ) as conn:  # Stripe refunded ch_ok; the mirror copies it a moment later
        conn.execute(
            f'UPDATE "{world["schema"]}".charges SET amount_refunded = 1000, refunded = true, '
            "_updated_at = now() + interval '1 second' WHERE id = 'ch_ok'"
        )
    [request], cursor = tick(cursor)
    again, _ = tick(cursor)

    assert (request.partition_key, request.tags["recon/trigger"], again) == (
        DAY.isoformat(),
        "late_change",
        [],
    )
