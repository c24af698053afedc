"""The three assets and the check, materialized through Dagster against real local parts."""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
import pytest

from recon_dagster.stores.report_store import ReportStore
from recon_dagster_tests.support.scenario import API_KEY, at, new_scenario

D1, D2, D3 = date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)


def evaluations(result):
    return {e.partition: e for e in result.get_asset_check_evaluations()}


def store_of(world) -> ReportStore:
    return ReportStore(f"duckdb:///{world.root / 'recon.duckdb'}")


def test_one_day_materializes_all_three_assets_and_stores_the_report(world, instance, monkeypatch):
    world.sale("ch_a", 10_000, at(D1, 9))
    world.sale("ch_b", 5_000, at(D1, 15), record=False)
    result = world.materialize(monkeypatch, D1.isoformat(), instance=instance)
    assert result.success
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert keys == {"stripe_charges", "db_payments", "reconciliation_report"}
    report = store_of(world).latest(D1)
    assert (report.missing_in_database, report.stripe_total, report.database_total) == (
        ["ch_b"],
        15_000,
        10_000,
    )


def test_report_metadata_carries_totals_percentage_counts_and_table(world, instance, monkeypatch):
    world.sale("ch_a", 10_000, at(D1))
    world.sale("ch_b", 5_000, at(D1), recorded_amount=4_000)
    world.materialize(monkeypatch, D1.isoformat(), instance=instance)
    mat = instance.get_latest_materialization_event(
        dg.AssetKey("reconciliation_report")
    ).asset_materialization
    meta = mat.metadata
    assert meta["discrepancy_percentage"].value == pytest.approx(100 * 1_000 / 15_000, rel=1e-6)
    assert isinstance(meta["discrepancy_percentage"], dg.FloatMetadataValue)
    assert meta["stripe_total"].value == "150.00 USD"
    assert meta["count_amount_mismatches"].value == 1
    assert "ch_b" in meta["largest_discrepancies"].value
    assert (meta["stripe_rows"].value, meta["database_rows"].value) == (2, 2)


def test_three_day_range_run_records_one_check_result_per_day(world, instance, monkeypatch):
    world.sale("ch_1", 10_000, at(D1))  # clean
    world.sale("ch_2", 10_000, at(D2))
    world.sale("ch_2b", 300, at(D2), record=False)  # 2.9%: above the 1% tolerance -> WARN
    world.sale("ch_3", 10_000, at(D3))
    world.sale("ch_3b", 2_000, at(D3), record=False)  # 16.7%: above the 5% critical level -> ERROR
    result = world.materialize(monkeypatch, D1.isoformat(), D3.isoformat(), instance=instance)
    assert result.success
    checks = evaluations(result)
    assert set(checks) == {D1.isoformat(), D2.isoformat(), D3.isoformat()}
    assert checks[D1.isoformat()].passed
    assert (checks[D2.isoformat()].passed, checks[D2.isoformat()].severity) == (
        False,
        dg.AssetCheckSeverity.WARN,
    )
    assert (checks[D3.isoformat()].passed, checks[D3.isoformat()].severity) == (
        False,
        dg.AssetCheckSeverity.ERROR,
    )
    materialized = {
        e.partition
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("reconciliation_report")
    }
    assert materialized == {D1.isoformat(), D2.isoformat(), D3.isoformat()}


def test_check_metadata_carries_the_figures_alerts_need(world, instance, monkeypatch):
    world.sale("ch_1", 10_000, at(D1))
    world.sale("ch_2", 2_000, at(D1), record=False)
    check = evaluations(world.materialize(monkeypatch, D1.isoformat(), instance=instance))[
        D1.isoformat()
    ]
    meta = {k: v.value for k, v in check.metadata.items()}
    assert (meta["stripe_total"], meta["database_total"], meta["discrepancy"]) == (
        "120.00",
        "100.00",
        "20.00",
    )
    assert meta["missing_in_database"] == ["ch_2"]
    assert meta["counts"]["missing_in_database"] == 1
    assert len(meta["top_recommendations"]) >= 1
    assert check.target_materialization_data is not None


def test_rematerializing_a_day_adds_a_report_version_and_replaces_its_asset_rows(
    world, instance, monkeypatch
):
    world.sale("ch_1", 10_000, at(D1))
    world.materialize(monkeypatch, D1.isoformat(), instance=instance)
    world.row("ch_late", 700, at(D1, 18))
    assert world.materialize(monkeypatch, D1.isoformat(), instance=instance).success
    with duckdb.connect(str(world.root / "recon.duckdb"), read_only=True) as con:
        versions = con.execute(
            "select version from reconciliation_reports where date = ? order by version", [D1]
        ).fetchall()
    assert versions == [(1,), (2,)]  # every version kept for the audit; the latest is current
    assert store_of(world).latest(D1).missing_in_stripe == ["ch_late"]
    with duckdb.connect(str(world.root / "assets.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from recon_assets.stripe_charges").fetchone()[0] == 1
        assert con.execute("select count(*) from recon_assets.db_payments").fetchone()[0] == 2


def test_day_without_charges_or_payments_is_clean(world, instance, monkeypatch):
    result = world.materialize(monkeypatch, D1.isoformat(), instance=instance)
    assert result.success
    assert evaluations(result)[D1.isoformat()].passed
    assert store_of(world).latest(D1).status == "success"


def test_dst_day_in_new_york_covers_23_hours(tmp_path, server, instance, monkeypatch):
    world = new_scenario(tmp_path, server, tz="America/New_York")
    spring = date(2024, 3, 10)
    world.sale("ch_first", 1_000, at(spring, 0, 0, 0, tz="America/New_York"))
    world.sale("ch_last", 2_000, at(spring, 23, 59, 50, tz="America/New_York"), record=False)
    world.sale("ch_next", 4_000, at(date(2024, 3, 11), 0, 0, 0, tz="America/New_York"))
    assert world.materialize(monkeypatch, spring.isoformat(), instance=instance).success
    report = store_of(world).latest(spring)
    assert (report.stripe_total, report.missing_in_database) == (3_000, ["ch_last"])


def test_unreachable_stripe_fails_the_run_and_records_an_error_report(world, instance, monkeypatch):
    world.server.fail_next(500, count=50)
    result = world.materialize(monkeypatch, D1.isoformat(), instance=instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "Could not read Stripe charges for 2024-03-04" in failure.step_failure_data.error.message
    assert API_KEY not in str(failure.step_failure_data.error.message)
    report = store_of(world).latest(D1)
    assert report.status == "error" and "Stripe" in report.error


def test_missing_payments_table_fails_with_the_variable_named(world, instance, monkeypatch):
    result = world.materialize(
        monkeypatch, D1.isoformat(), instance=instance, RECON_PAYMENTS_TABLE="orders"
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "RECON_PAYMENTS_TABLE" in failure.step_failure_data.error.message
    assert store_of(world).latest(D1).status == "error"


def test_one_bad_row_in_a_day_is_listed_and_the_rest_reconciled_with_a_warn_check(
    world, instance, monkeypatch
):
    for n in range(20):
        world.sale(f"ch_{n:02d}", 1_000, at(D1, 9, n))
    world.row("ch_null", None, at(D1, 10))  # one NULL amount in a day of twenty good rows
    result = world.materialize(monkeypatch, D1.isoformat(), instance=instance)
    assert result.success
    report = store_of(world).latest(D1)
    assert report.status == "success" and (report.stripe_total, report.database_total) == (
        20_000,
        20_000,
    )
    [bad] = report.of("invalid_rows")
    assert (bad.payment_id, bad.source, bad.column, bad.detail) == (
        "ch_null",
        "database",
        "amount",
        "NULL in amount column 'amount'",
    )
    check = evaluations(result)[D1.isoformat()]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert "1 row(s) could not be reconciled" in check.description
    mat = instance.get_latest_materialization_event(
        dg.AssetKey("reconciliation_report")
    ).asset_materialization
    assert (
        mat.metadata["count_invalid_rows"].value == 1
        and "ch_null" in mat.metadata["invalid_rows"].value
    )


def test_disputed_charges_reach_the_report_and_its_metadata(world, instance, monkeypatch):
    from recon_dagster.testing.stripe_server import make_charge, make_dispute

    world.sale("ch_ok", 100_000, at(D1, 9))
    world.server.add_charges(
        [make_charge("ch_cb", 3_000, created=int(at(D1, 10).timestamp()), disputed=True)]
    )
    world.row("ch_cb", 3_000, at(D1, 10, 0, 2))
    world.server.add_disputes(
        [
            make_dispute(
                "dp_cb",
                "ch_cb",
                3_000,
                status="lost",
                created=int(at(D1 + (D2 - D1), 8).timestamp()),
            )
        ]
    )
    assert world.materialize(monkeypatch, D1.isoformat(), instance=instance).success
    [dispute] = store_of(world).latest(D1).of("disputes")
    assert (dispute.payment_id, dispute.dispute_id, dispute.dispute_status, dispute.difference) == (
        "ch_cb",
        "dp_cb",
        "lost",
        3_000,
    )
    mat = instance.get_latest_materialization_event(
        dg.AssetKey("reconciliation_report")
    ).asset_materialization
    assert mat.metadata["count_disputes"].value == 1 and "dp_cb" in mat.metadata["disputes"].value


def test_asset_tables_from_before_disputes_and_invalid_rows_gain_those_columns(
    world, instance, monkeypatch
):
    world.sale("ch_1", 1_000, at(D1, 9))
    assert world.materialize(monkeypatch, D1.isoformat(), instance=instance).success
    assets = world.root / "assets.duckdb"
    with duckdb.connect(str(assets)) as con:  # as an older version left them
        for table, column in (
            ("stripe_charges", "dispute_status"),
            ("db_payments", "invalid_reason"),
        ):
            con.execute(f"alter table recon_assets.{table} drop column {column}")
    world.sale("ch_2", 2_000, at(D2, 9))
    assert world.materialize(monkeypatch, D2.isoformat(), instance=instance).success
    assert store_of(world).latest(D2).findings == ()
    with duckdb.connect(str(assets)) as con:
        names = {r[0] for r in con.execute("describe recon_assets.stripe_charges").fetchall()}
    assert "dispute_status" in names
