"""Repair: syncing missing payments from Stripe, on DuckDB and SQLite files, real PostgreSQL and
MariaDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from recon_dagster.definitions import build_defs
from recon_dagster.defs.shared import SYNC_JOB
from recon_dagster.service import create_billing_reconciliation_service
from recon_dagster.settings import Settings
from recon_dagster.sources import payments_db
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.stripe_server import StripeServer, make_charge
from recon_dagster_tests.support.databases import KINDS, execute, kind_of
from recon_dagster_tests.support.scenario import API_KEY, at

DAY = date(2024, 7, 1)
ORDERS = (
    "create table {t} (charge_ref varchar(64), total_major numeric(12, 2), cur varchar(3), "
    "state varchar(20), placed_at timestamptz, refunded_major numeric(12, 2))"
)
CHARGES = [
    make_charge("ch_kept", 2_000, created=int(at(DAY, 9).timestamp())),
    make_charge("ch_lost1", 1_999, created=int(at(DAY, 10).timestamp())),
    make_charge("ch_lost2", 5_000, created=int(at(DAY, 11).timestamp()), amount_refunded=1_000),
    make_charge("ch_failed", 700, created=int(at(DAY, 12).timestamp()), status="failed"),
    make_charge(
        "ch_kwd", 1_234, "kwd", created=int(at(DAY, 13).timestamp())
    ),  # 1.234 KWD: numeric(12,2) cannot hold it
    make_charge("ch_midnight", 800, created=int(at(DAY, 23, 59, 58).timestamp())),
]


@pytest.fixture
def server():
    with StripeServer(CHARGES, api_key=API_KEY) as s:
        yield s


# The orders table on each database. On SQLite, whose columns hold any value, a CHECK keeps the
# amounts to cents as numeric(12, 2) does elsewhere.
ORDERS_DDL = {
    "duckdb": ORDERS,
    "postgres": ORDERS,
    "mysql": ORDERS.replace("timestamptz", "timestamp(6) null"),
    "sqlite": ORDERS.replace(
        "total_major numeric(12, 2)",
        "total_major numeric(12, 2) check (round(total_major, 2) = total_major)",
    ),
}


@pytest.fixture(params=KINDS)
def table_url(request, tmp_path):
    """An `orders` table in major units, holding ch_kept and ch_midnight (recorded after
    midnight)."""
    rows = [
        ("ch_kept", "20.00", "USD", "paid", at(DAY, 9, 0, 2), "0"),
        ("ch_midnight", "8.00", "USD", "paid", at(DAY + timedelta(days=1), 0, 0, 3), "0"),
    ]
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
    elif request.param == "mysql":
        url = request.getfixturevalue("mysql_database").url
    else:
        url = request.getfixturevalue("postgres_schema").url
    execute(url, ORDERS_DDL[request.param].format(t="orders"))
    execute(
        url,
        "insert into orders values ({0}, {0}, {0}, {0}, {0}, {0})",
        [_stored(url, r) for r in rows],
    )
    return url


def _stored(url: str, row: tuple) -> tuple:
    """Aware times as the driver can write them: UTC wall times for MySQL, ISO text for SQLite."""
    kind = kind_of(url)
    return tuple(
        (
            v.astimezone(UTC).replace(tzinfo=None)
            if kind == "mysql"
            else v.isoformat(sep=" ")
            if kind == "sqlite"
            else v
        )
        if isinstance(v, datetime)
        else v
        for v in row
    )


@pytest.fixture
def env(tmp_path, server, table_url):
    return {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_DATABASE_URL": table_url,
        "RECON_PAYMENTS_TABLE": "orders",
        "RECON_PAYMENTS_ID_COLUMN": "charge_ref",
        "RECON_PAYMENTS_AMOUNT_COLUMN": "total_major",
        "RECON_PAYMENTS_AMOUNT_UNIT": "major",
        "RECON_PAYMENTS_CURRENCY_COLUMN": "cur",
        "RECON_PAYMENTS_STATUS_COLUMN": "state",
        "RECON_PAYMENTS_CREATED_AT_COLUMN": "placed_at",
        "RECON_PAYMENTS_REFUNDED_COLUMN": "refunded_major",
        "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
    }


@pytest.fixture
def service(env, tmp_path):
    return create_billing_reconciliation_service(Settings.from_env(env, base_dir=tmp_path))


def ids_in_table(service) -> list[str]:
    frame = payments_db.find_ids(service.settings.payments, [c["id"] for c in CHARGES])
    return sorted(frame["id"].to_list())


def test_sync_repairs_the_day_so_nothing_is_missing_in_the_database(service):
    assert set(service.reconcile(DAY).missing_in_database) == {"ch_lost1", "ch_lost2", "ch_kwd"}
    result = service.sync_days(DAY)
    assert result.synced == 2
    assert [f.payment_id for f in result.failed] == ["ch_kwd"]
    after = service.store().latest(DAY)  # refreshed by the sync
    assert after.missing_in_database == ["ch_kwd"]
    assert service.reconcile(DAY).missing_in_database == ["ch_kwd"]


def test_synced_rows_carry_amount_currency_status_time_and_refund_in_the_tables_units(service):
    service.sync_missing_payments(["ch_lost2"])
    frame = payments_db.find_ids(service.settings.payments, ["ch_lost2"])
    assert frame.select("amount", "currency", "status", "refunded").row(0) == (
        5_000,
        "USD",
        "succeeded",
        1_000,
    )
    assert frame["created_at"][0] == at(DAY, 11)


def test_second_sync_is_a_no_op(service):
    service.sync_days(DAY)
    again = service.sync_missing_payments(["ch_lost1", "ch_lost2"])
    assert (again.synced, again.failed) == (0, [])
    assert [s["payment_id"] for s in again.to_json_dict()["skipped"]] == ["ch_lost1", "ch_lost2"]


def test_two_concurrent_syncs_insert_each_payment_once(service):
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(service.sync_missing_payments(["ch_lost1", "ch_lost2"]))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.synced for r in results) == 2
    assert ids_in_table(service) == ["ch_kept", "ch_lost1", "ch_lost2", "ch_midnight"]


def test_a_charge_unknown_to_stripe_fails_only_that_id(service):
    result = service.sync_missing_payments(["ch_nope", "ch_lost1"])
    assert result.synced == 1
    assert [(f.payment_id, f.reason) for f in result.failed] == [
        ("ch_nope", "no such charge in Stripe (404)")
    ]


def test_a_database_error_midway_keeps_what_was_committed(service):
    result = service.sync_missing_payments(["ch_lost1", "ch_kwd", "ch_lost2"])
    assert result.synced == 2
    [failed] = result.failed
    assert failed.payment_id == "ch_kwd" and "total_major" in failed.reason
    assert ids_in_table(service) == ["ch_kept", "ch_lost1", "ch_lost2", "ch_midnight"]


def test_a_payment_recorded_on_the_next_day_is_not_inserted_again(service):
    assert "ch_midnight" not in service.reconcile(DAY).missing_in_database
    result = service.sync_missing_payments(["ch_midnight"])
    assert result.synced == 0 and result.to_json_dict()["skipped"][0]["payment_id"] == "ch_midnight"


def test_failed_charge_is_refused(service):
    [failed] = service.sync_missing_payments(["ch_failed"]).failed
    assert "no money was collected" in failed.reason


def test_dry_run_writes_nothing_and_says_what_it_would_do(service):
    result = service.sync_days(DAY, dry_run=True)
    assert set(result.to_json_dict()["would_sync"]) == {"ch_lost1", "ch_lost2", "ch_kwd"}
    assert ids_in_table(service) == ["ch_kept", "ch_midnight"]


def test_every_action_is_audited(service):
    service.sync_missing_payments(["ch_lost1", "ch_nope"])
    audit = {(a["payment_id"], a["result"]) for a in service.store().sync_audit.history()}
    assert audit == {("ch_lost1", "inserted"), ("ch_nope", "failed")}


def test_cli_sync_repairs_then_reports_zero(env, tmp_path):
    def sync(*args):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "recon_dagster.cli",
                "sync",
                "--start",
                DAY.isoformat(),
                "--json",
                *args,
            ],
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        return out.returncode, json.loads(out.stdout)

    code, first = sync()
    assert (code, first["synced"], [f["payment_id"] for f in first["failed"]]) == (1, 2, ["ch_kwd"])
    code, second = sync("--ids", "ch_lost1", "ch_lost2")
    assert (code, second["synced"], second["failed"]) == (0, 0, [])


def test_dagster_job_syncs_from_the_stored_report_and_the_sensor_refreshes_the_day(
    env, tmp_path, monkeypatch, any_instance
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    service = create_billing_reconciliation_service()
    service.reconcile(DAY)  # the stored report names what is missing
    defs = build_defs(Settings.from_env())  # the code location, from this environment
    # The sensor as the daemon evaluates it: its first tick only notes where the run history stands.
    sensor, repository = defs.resolve_sensor_def("refresh_after_sync"), defs.get_repository_def()
    first = sensor.evaluate_tick(
        dg.build_sensor_context(instance=any_instance, repository_def=repository)
    )
    assert not first.run_requests
    run = defs.resolve_job_def(SYNC_JOB).execute_in_process(
        instance=any_instance,
        run_config={"ops": {"sync_missing_payments_op": {"config": {"start": DAY.isoformat()}}}},
    )
    assert run.output_for_node("sync_missing_payments_op")["synced"] == 2
    context = dg.build_sensor_context(
        instance=any_instance, cursor=first.cursor, repository_def=repository
    )
    requests = sensor.evaluate_tick(context).run_requests
    assert [(r.job_name, r.partition_key) for r in requests] == [
        ("daily_reconciliation", DAY.isoformat())
    ]
    assert ReportStore(env["RECON_REPORT_STORE_URL"]).sync_audit.history()[0]["result"] in {
        "inserted",
        "failed",
    }


# -- a table that keeps PaymentIntent ids
# -----------------------------------------------------------

INTENT_DAY = DAY + timedelta(days=3)
INTENT_CHARGES = [
    make_charge("ch_i1", 2_000, created=int(at(INTENT_DAY, 9).timestamp()), payment_intent="pi_i1"),
    make_charge(
        "ch_i2", 1_500, created=int(at(INTENT_DAY, 10).timestamp()), payment_intent="pi_i2"
    ),
    make_charge("ch_i3", 700, created=int(at(INTENT_DAY, 11).timestamp()), payment_intent="pi_i3"),
]


@pytest.fixture
def intent_service(serve, table_url, env, tmp_path):
    """The day's table holds the PaymentIntent id of ch_i1 only; ch_i2 and ch_i3 are missing."""
    row = ("pi_i1", "20.00", "USD", "paid", at(INTENT_DAY, 9, 0, 2), "0")
    execute(
        table_url,
        "insert into orders values ({0}, {0}, {0}, {0}, {0}, {0})",
        [_stored(table_url, row)],
    )
    server = serve(CHARGES + INTENT_CHARGES, api_key=API_KEY)
    return create_billing_reconciliation_service(
        Settings.from_env({**env, "STRIPE_API_BASE": server.url}, base_dir=tmp_path)
    )


def test_sync_writes_payment_intent_ids_where_the_days_table_keeps_them(intent_service):
    assert sorted(intent_service.reconcile(INTENT_DAY).missing_in_database) == ["ch_i2", "ch_i3"]
    assert intent_service.sync_days(INTENT_DAY).synced == 2
    day = payments_db.read_window(
        intent_service.settings.payments, at(INTENT_DAY, 0), at(INTENT_DAY + timedelta(days=1), 0)
    )
    assert sorted(day["id"].to_list()) == ["pi_i1", "pi_i2", "pi_i3"]
    assert intent_service.reconcile(INTENT_DAY).findings == ()


def test_a_charge_whose_intent_is_in_the_table_is_already_present(intent_service):
    result = intent_service.sync_missing_payments(["ch_i1"], day=INTENT_DAY)
    assert result.synced == 0 and [s["payment_id"] for s in result.to_json_dict()["skipped"]] == [
        "ch_i1"
    ]
    dry = intent_service.sync_missing_payments(["ch_i1"], day=INTENT_DAY, dry_run=True)
    assert dry.to_json_dict()["would_sync"] == []
