"""`recon-dagster reconcile`, run as a user would: a subprocess, its stdout, its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal

import pytest

from recon_dagster.stores.report_store import ReportStore
from recon_dagster.stores.report_versions import VERSION_KEYS
from recon_dagster.testing.stripe_server import make_payout
from recon_dagster_tests.support.scenario import API_KEY, at

DAY, NEXT = date(2024, 5, 6), date(2024, 5, 7)
SEED_KEYS = {
    "date",
    "stripe_total",
    "database_total",
    "discrepancy",
    "discrepancy_percentage",
    "missing_in_database",
    "missing_in_stripe",
    "amount_mismatches",
    "status",
    "recommendations",
}


def run(world, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **world.environment(**env)}
    return subprocess.run(
        [sys.executable, "-m", "recon_dagster.cli", "reconcile", *args],
        cwd=world.root,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def history(world, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recon_dagster.cli", "history", *args],
        cwd=world.root,
        env={**os.environ, **world.environment()},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_clean_day_exits_zero_with_the_seed_fields_in_json(world):
    world.sale("ch_1", 1999, at(DAY))
    out = run(world, "--start", DAY.isoformat(), "--json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert SEED_KEYS <= set(body)
    assert (body["status"], body["date"], Decimal(body["stripe_total"])) == (
        "success",
        "2024-05-06",
        Decimal("19.99"),
    )


def test_discrepancy_exits_one_with_ids_and_major_unit_mismatches(world):
    world.sale("ch_1", 10_000, at(DAY))
    world.sale("ch_2", 2_500, at(DAY), recorded_amount=2_000)
    world.sale("ch_3", 700, at(DAY), record=False)
    out = run(world, "--start", DAY.isoformat(), "--json")
    assert out.returncode == 1
    body = json.loads(out.stdout)
    assert body["missing_in_database"] == ["ch_3"]
    assert body["amount_mismatches"] == [
        {
            "payment_id": "ch_2",
            "currency": "USD",
            "stripe_amount": "25.00",
            "database_amount": "20.00",
            "difference": "5.00",
        }
    ]
    assert Decimal(body["discrepancy"]) == Decimal("12.00")


def test_tolerance_flag_overrides_the_environment(world):
    world.sale("ch_1", 10_000, at(DAY))
    world.sale("ch_2", 300, at(DAY), record=False)
    assert run(world, "--start", DAY.isoformat(), "--tolerance", "5").returncode == 0
    assert run(world, "--start", DAY.isoformat(), "--tolerance", "0.5").returncode == 1


def test_no_include_refunds_compares_gross_amounts(world):
    world.sale("ch_1", 10_000, at(DAY), refunded=4_000, db_refunded=0)
    assert run(world, "--start", DAY.isoformat(), "--no-include-refunds").returncode == 0
    assert run(world, "--start", DAY.isoformat(), "--include-refunds").returncode == 1


def test_range_matches_a_payment_recorded_after_midnight(world):
    world.sale("ch_late", 5_000, at(DAY, 23, 59, 58), record=False)
    world.row("ch_late", 5_000, at(NEXT, 0, 0, 3))
    one_day = json.loads(run(world, "--start", DAY.isoformat(), "--json").stdout)
    assert [t["payment_id"] for t in one_day["timing_differences"]] == ["ch_late"]
    assert one_day["missing_in_database"] == []
    both = json.loads(
        run(world, "--start", DAY.isoformat(), "--end", NEXT.isoformat(), "--json").stdout
    )
    assert (both["status"], both["timing_differences"], both["end_date"]) == (
        "success",
        [],
        "2024-05-07",
    )


def test_unreachable_stripe_exits_two_and_records_an_error(world):
    world.server.stop()
    out = run(world, "--start", DAY.isoformat(), "--json")
    assert out.returncode == 2
    body = json.loads(out.stdout)
    assert body["status"] == "error" and "Stripe" in body["error"]
    assert API_KEY not in out.stdout + out.stderr
    assert ReportStore(f"duckdb:///{world.root / 'recon.duckdb'}").latest(DAY).status == "error"


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        (
            {"BILLING_RECONCILIATION_TOLERANCE_PERCENT": "abc"},
            (),
            "BILLING_RECONCILIATION_TOLERANCE_PERCENT",
        ),
        (
            {"BILLING_RECONCILIATION_TOLERANCE_PERCENT": "-1"},
            (),
            "BILLING_RECONCILIATION_TOLERANCE_PERCENT",
        ),
        ({}, ("--tolerance", "abc"), "--tolerance"),
        ({"RECON_TIMEZONE": "Mars/Olympus"}, (), "RECON_TIMEZONE"),
        ({"RECON_PAYMENTS_TABLE": "payments; drop table x"}, (), "RECON_PAYMENTS_TABLE"),
        ({"RECON_PAYMENTS_TABLE": "orders"}, (), "RECON_PAYMENTS_TABLE"),
        ({"RECON_PAYMENTS_AMOUNT_COLUMN": "total"}, (), "RECON_PAYMENTS_AMOUNT_COLUMN"),
        ({"RECON_PAYMENTS_AMOUNT_UNIT": "cents"}, (), "RECON_PAYMENTS_AMOUNT_UNIT"),
    ],
)
def test_bad_configuration_exits_two_naming_the_problem_and_writes_nothing(world, env, args, named):
    out = run(world, "--start", DAY.isoformat(), "--json", *args, **env)
    assert out.returncode == 2
    assert named in json.loads(out.stdout)["error"]
    assert named in out.stderr
    assert not (world.root / "recon.duckdb").exists()


# -- history ---------------------------------------------------------------------------------------
def test_history_start_end_json_lists_every_version_newest_first_with_what_changed(world):
    world.sale("ch_1", 10_000, at(DAY))
    world.sale("ch_2", 2_500, at(DAY), record=False)
    world.sale("ch_9", 1_000, at(NEXT))
    run(world, "--start", DAY.isoformat())  # version 1: ch_2 is missing in the database
    run(world, "--start", NEXT.isoformat())
    world.row("ch_2", 2_000, at(DAY, 13))  # recorded later, for the wrong amount
    run(world, "--start", DAY.isoformat())  # version 2: ch_2 is an amount mismatch
    out = history(world, "--start", DAY.isoformat(), "--end", NEXT.isoformat(), "--json")
    assert out.returncode == 0, out.stderr
    versions = json.loads(out.stdout)["versions"]
    assert [(v["date"], v["end_date"], v["version"], v["trigger"]) for v in versions] == [
        ("2024-05-06", "2024-05-06", 2, "cli"),
        ("2024-05-07", "2024-05-07", 1, "cli"),
        ("2024-05-06", "2024-05-06", 1, "cli"),
    ]
    assert all(tuple(v) == VERSION_KEYS for v in versions)
    assert (versions[0]["status"], versions[0]["stripe_total"], versions[0]["database_total"]) == (
        "discrepancy_found",
        "125.00",
        "120.00",
    )
    assert versions[0]["changed"] == [
        {
            "payment_id": "ch_2",
            "before": {
                "kind": "missing_in_database",
                "currency": "USD",
                "stripe_amount": "25.00",
                "database_amount": None,
                "difference": "25.00",
            },
            "after": {
                "kind": "amount_mismatches",
                "currency": "USD",
                "stripe_amount": "25.00",
                "database_amount": "20.00",
                "difference": "5.00",
            },
        }
    ]
    assert [v["changed"] for v in versions[1:]] == [[], []]


def test_history_start_alone_is_that_day_and_without_start_only_latest_reports(world):
    world.sale("ch_1", 10_000, at(DAY))
    world.sale("ch_9", 1_000, at(NEXT))
    for day in (DAY, DAY, NEXT):
        run(world, "--start", day.isoformat())
    one_day = json.loads(history(world, "--start", DAY.isoformat(), "--json").stdout)["versions"]
    assert [(v["date"], v["version"]) for v in one_day] == [("2024-05-06", 2), ("2024-05-06", 1)]
    latest = json.loads(history(world, "--json").stdout)["reports"]
    assert [(r["date"], r["version"]) for r in latest] == [("2024-05-07", 1), ("2024-05-06", 2)]


def test_history_end_without_start_exits_two_naming_the_flag(world):
    out = history(world, "--end", DAY.isoformat(), "--json")
    assert out.returncode == 2
    assert "--end" in json.loads(out.stdout)["error"]


def changes(world, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recon_dagster.cli", "changes", *args],
        cwd=world.root,
        env={**os.environ, **world.environment()},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_changes_lists_the_stored_days_stripe_changed_since_their_report_and_runs_nothing(world):
    world.sale("ch_1", 10_000, at(DAY))
    world.sale("ch_2", 5_000, at(NEXT))
    world.sale("ch_3", 7_000, at(date(2024, 5, 8)))  # its day is never reconciled
    assert run(world, "--start", DAY.isoformat(), "--end", NEXT.isoformat()).returncode == 0
    refund = world.server.update_charge("ch_1", amount_refunded=10_000, refunded=True)
    world.server.update_charge("ch_3", amount_refunded=7_000, refunded=True)
    world.server.add_payouts(
        [make_payout("po_1", 15_000, arrival_date=int(at(NEXT, 0).timestamp()))]
    )
    world.server.update_payout(
        "po_1", status="failed"
    )  # a payout's change is the payouts domain's, not a stored charges day's

    out = changes(world, "--since", DAY.isoformat(), "--json")

    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    [day] = body["days"]
    assert (day["date"], day["events"], day["types"], day["charges"]) == (
        DAY.isoformat(),
        [refund["id"]],
        ["charge.refunded"],
        ["ch_1"],
    )
    assert body["events_read"] == 2
    assert [
        v["version"]
        for v in ReportStore(world.environment()["RECON_REPORT_STORE_URL"]).versions(DAY)
    ] == [1]  # nothing re-run
