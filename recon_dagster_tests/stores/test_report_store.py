"""The report store against a real DuckDB file and a real PostgreSQL schema (one per test)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import duckdb
import psycopg
import pytest

from recon_dagster.core.result import CurrencyTotals, Finding, ReconciliationResult
from recon_dagster.money import to_major
from recon_dagster.stores.migrations import MIGRATIONS
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.stores.report_versions import VERSION_KEYS, trigger_of_run
from recon_dagster.stores.store_database import json_text, jsonable as _jsonable
from recon_dagster_tests.support.store_sql import raw, run_raw

DAY = date(2024, 3, 10)
TABLES = {
    "recon_schema_migrations",
    "reconciliation_reports",
    "reconciliation_line_items",
    "reconciliation_currency_totals",
    "sync_audit",
}


# -- builders --------------------------------------------------------------------------------------
def finding(kind: str, payment_id: str, currency: str = "USD", **fields) -> Finding:
    return Finding(kind=kind, payment_id=payment_id, currency=currency, **fields)


def result(
    start: date = DAY,
    end: date | None = None,
    *,
    findings: tuple[Finding, ...] | None = None,
    stripe_total: int = 123456,
    database_total: int = 120000,
) -> ReconciliationResult:
    noon = datetime(2024, 3, 10, 12, 30, 15, 123456, tzinfo=UTC)
    if findings is None:
        findings = (
            finding(
                "missing_in_database",
                "ch_md",
                stripe_amount=3456,
                difference=3456,
                stripe_status="succeeded",
            ),
            finding(
                "missing_in_stripe",
                "ch_ms",
                "JPY",
                database_amount=1500,
                difference=-1500,
                database_status="paid",
            ),
            finding(
                "amount_mismatches", "ch_am", stripe_amount=1000, database_amount=999, difference=1
            ),
            finding(
                "status_mismatches",
                "ch_st",
                stripe_status="failed",
                database_status="paid",
                detail="failed",
            ),
            finding(
                "refund_mismatches",
                "ch_rf",
                stripe_refunded=500,
                database_refunded=0,
                difference=-500,
            ),
            finding(
                "duplicates_in_database",
                "ch_dup",
                "JPY",
                database_amount=1500,
                database_count=2,
                difference=-1500,
            ),
            finding(
                "currency_mismatches",
                "ch_cur",
                stripe_currency="USD",
                database_currency="EUR",
                difference=7,
            ),
            finding(
                "timing_differences",
                "ch_tm",
                stripe_created=noon,
                database_created=noon + timedelta(days=1),
            ),
        )
    totals = (
        CurrencyTotals(
            "USD",
            stripe_total,
            database_total,
            10,
            9,
            stripe_total - database_total,
            3957,
            2.79,
            3.2,
        ),
        CurrencyTotals("JPY", 1500, 3000, 1, 2, 1500, 3000, 100.0, 200.0),
    )
    return ReconciliationResult(
        date=start,
        end_date=end or start,
        timezone="Europe/Berlin",
        status="discrepancy_found",
        currency="USD",
        stripe_total=stripe_total,
        database_total=database_total,
        discrepancy=stripe_total - database_total,
        discrepancy_percentage=2.79,
        gross_discrepancy=3957,
        gross_discrepancy_percentage=3.2,
        tolerance_percentage=1.0,
        include_refunds=True,
        totals=totals,
        findings=findings,
        recommendations=("Look at ch_md.", "Check JPY duplicates."),
        stripe_count=11,
        database_count=11,
    )


# -- migrations ------------------------------------------------------------------------------------
def test_migrate_creates_all_tables(store):
    store.migrate()
    schema = store.schema or "main"
    names = {
        r[0]
        for r in raw(
            store,
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'",
        )
    }
    assert TABLES <= names


def test_migrate_twice_keeps_one_row_per_version(store):
    assert store.migrate() == [v for v, _ in MIGRATIONS]
    assert ReportStore(store.url, schema=store.schema).migrate() == []
    rows = raw(
        store,
        "SELECT version, count(*) FROM {s}recon_schema_migrations GROUP BY version ORDER BY "
        "version",
    )
    assert rows == [(v, 1) for v, _ in MIGRATIONS]


def test_concurrent_migrate_on_postgres_does_not_fail(postgres_url, store_pg_schema):
    barrier, errors = threading.Barrier(2), []

    def run():
        barrier.wait()
        try:
            ReportStore(postgres_url, schema=store_pg_schema).migrate()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = ReportStore(postgres_url, schema=store_pg_schema)
    assert raw(store, "SELECT count(*) FROM {s}recon_schema_migrations") == [(len(MIGRATIONS),)]


def test_schema_from_url_options_is_created_and_used(postgres_url, store_pg_schema):
    url = f"{postgres_url}?options=-csearch_path%3D{store_pg_schema}"
    store = ReportStore(url)
    store.save(result())
    assert store.schema == store_pg_schema
    assert raw(store, "SELECT count(*) FROM {s}reconciliation_reports") == [(1,)]


# -- reports ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("percentage", [12.5, float("inf"), float("nan")])
def test_details_text_is_the_json_of_the_walked_value(percentage):
    value = {
        "date": DAY,
        "at": datetime(2024, 3, 10, 12, 30, tzinfo=UTC),
        "amount": Decimal("19.99"),
        "percentage": percentage,
        "findings": ({"id": "ch_1", "amounts": (1999, None), "ok": True},),
        "counts": {"amount_mismatches": 1},
    }
    assert json_text(value) == json.dumps(_jsonable(value), allow_nan=False)


def test_details_text_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match="set"):
        json_text({"ids": {"ch_1"}})


def test_latest_days_reads_each_days_current_one_day_report_in_the_range(store):
    later = DAY + timedelta(days=1)
    store.save(result(DAY))
    store.save(result(DAY, stripe_total=120000))  # the day's version 2
    store.save(result(later))
    store.save(result(DAY, later, stripe_total=1))  # a range report: not a day's
    store.save(result(later + timedelta(days=1)))  # outside the range
    found = store.latest_days(DAY - timedelta(days=1), later)
    assert found == {DAY: store.latest(DAY), later: store.latest(later)}
    assert found[DAY].stripe_total == 120000


def test_save_then_latest_round_trips_every_field(store):
    original = result()
    store.save(original, source="cli", run_id="run-1")
    assert store.latest(DAY) == original


def test_latest_is_none_for_a_day_never_saved(store):
    assert store.latest(DAY) is None


def test_line_items_keep_exact_minor_units_per_currency(store):
    report_id = store.save(result())
    rows = raw(
        store,
        "SELECT kind, currency, stripe_amount, database_amount, difference FROM "
        "{s}reconciliation_line_items "
        f"WHERE report_id = '{report_id}' ORDER BY position",
    )
    assert rows[1] == ("missing_in_stripe", "JPY", None, 1500, -1500)
    assert rows[0] == ("missing_in_database", "USD", 3456, None, 3456)
    assert len(rows) == 8


def test_resave_same_day_adds_a_version_and_the_latest_is_current(store):
    first_id = store.save(result())
    new = result(
        findings=(finding("missing_in_stripe", "ch_new", database_amount=10, difference=-10),)
    )
    report_id = store.save(new)
    assert raw(store, "SELECT id, version FROM {s}reconciliation_reports ORDER BY version") == [
        (first_id, 1),
        (report_id, 2),
    ]
    assert store.latest(DAY) == new
    [current] = store.history()
    assert (current["id"], current["version"], current["findings"]) == (report_id, 2, 1)


def test_older_versions_keep_their_line_items_and_totals(store):
    first_id = store.save(result())
    store.save(
        result(
            findings=(finding("missing_in_stripe", "ch_new", database_amount=10, difference=-10),)
        )
    )
    assert raw(
        store, f"SELECT count(*) FROM {{s}}reconciliation_line_items WHERE report_id = '{first_id}'"
    ) == [(8,)]
    assert raw(
        store,
        f"SELECT count(*) FROM {{s}}reconciliation_currency_totals WHERE report_id = '{first_id}'",
    ) == [(2,)]


def test_range_report_is_kept_apart_from_day_reports(store):
    week = result(DAY, DAY + timedelta(days=6), stripe_total=999999)
    store.save(result())
    store.save(week)
    store.save(result())
    assert store.latest(DAY, DAY + timedelta(days=6)) == week
    assert store.latest(DAY).stripe_total == 123456
    versions = raw(
        store,
        "SELECT end_date, max(version) FROM {s}reconciliation_reports GROUP BY end_date ORDER BY "
        "end_date",
    )
    assert versions == [(DAY, 2), (DAY + timedelta(days=6), 1)]


def test_save_error_records_status_error_with_message(store):
    store.save(result())
    store.save_error(
        DAY,
        DAY,
        "UTC",
        "Stripe API unreachable",
        tolerance=1.0,
        include_refunds=True,
        source="cli",
        run_id="r9",
    )
    stored = store.latest(DAY)
    assert (stored.status, stored.error, stored.findings) == ("error", "Stripe API unreachable", ())
    [row] = store.history()
    assert (row["status"], row["error"], row["source"], row["run_id"]) == (
        "error",
        "Stripe API unreachable",
        "cli",
        "r9",
    )


def test_history_orders_newest_first_and_filters_by_first_day(store):
    for offset in (0, 2, 1, 3):
        store.save(result(DAY + timedelta(days=offset)))
    assert [r["date"] for r in store.history()] == [DAY + timedelta(days=d) for d in (3, 2, 1, 0)]
    window = store.history(DAY + timedelta(days=1), DAY + timedelta(days=2))
    assert [r["date"] for r in window] == [DAY + timedelta(days=2), DAY + timedelta(days=1)]


def test_history_counts_findings_per_class(store):
    store.save(result())
    [row] = store.history()
    assert row["findings"] == 8
    assert {k for k, v in row["counts"].items() if v} == {f.kind for f in result().findings}
    assert set(row["counts"].values()) == {0, 1}


def test_money_columns_are_exact_decimals(store):
    store.save(result(stripe_total=123456, database_total=100000))
    [row] = store.history()
    assert row["stripe_total"] == Decimal("1234.56") and str(row["stripe_total"]) == "1234.56"
    assert row["stripe_total_minor"] == 123456
    [(stored,)] = raw(store, "SELECT stripe_total FROM {s}reconciliation_reports")
    assert isinstance(stored, Decimal) and stored == Decimal("1234.56")
    [(jpy_major, jpy_minor)] = raw(
        store,
        "SELECT stripe_total, stripe_total_minor FROM "
        "{s}reconciliation_currency_totals WHERE currency = 'JPY'",
    )
    assert (jpy_major, jpy_minor) == (Decimal("1500"), 1500)
    schema = store.schema or "main"
    types = raw(
        store,
        "SELECT column_name, numeric_precision, numeric_scale FROM information_schema.columns "
        f"WHERE table_schema = '{schema}' AND table_name = 'reconciliation_reports' "
        "AND column_name IN ('stripe_total', 'discrepancy_percentage') ORDER BY column_name",
    )
    assert types[1] == ("stripe_total", 38, 4)
    assert types[0][0] == "discrepancy_percentage" and types[0][2] in (
        None,
        0,
    )  # floating point, not money


# -- sync audit ------------------------------------------------------------------------------------
def test_sync_audit_records_and_reads_back(store):
    written = store.sync_audit.record(
        [
            {
                "run_id": "r1",
                "payment_id": "ch_1",
                "action": "insert",
                "result": "inserted",
                "date": DAY,
            },
            {
                "run_id": "r1",
                "payment_id": "ch_2",
                "action": "skip",
                "result": "already_present",
                "reason": "exists",
            },
            {
                "run_id": "r2",
                "payment_id": "ch_3",
                "action": "dry_run",
                "result": "would_insert",
                "dry_run": True,
            },
        ]
    )
    assert written == 3
    assert [(r["payment_id"], r["result"]) for r in store.sync_audit.history(run_id="r1")] == [
        ("ch_1", "inserted"),
        ("ch_2", "already_present"),
    ]
    [dry] = store.sync_audit.history(payment_id="ch_3")
    assert (dry["action"], dry["dry_run"], dry["date"], dry["reason"]) == (
        "dry_run",
        True,
        None,
        None,
    )
    assert [r["payment_id"] for r in store.sync_audit.history(start=DAY, end=DAY)] == ["ch_1"]


# -- connections -----------------------------------------------------------------------------------
def test_duckdb_waits_for_another_process_to_release_the_file(tmp_path):
    path = tmp_path / "shared.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import duckdb, sys, time\n"
                f"c = duckdb.connect({str(path)!r}); c.execute('CREATE TABLE held (x INT)')\n"
                "print('locked', flush=True); time.sleep(1.5); c.close()\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        ReportStore(f"duckdb:///{path}").save(result())
        assert time.monotonic() - started > 0.5
    finally:
        holder.wait(timeout=30)
    assert ReportStore(f"duckdb:///{path}").latest(DAY) == result()


def test_repr_hides_the_url_password():
    store = ReportStore("postgresql://recon:hunter2@db.internal:5432/recon")
    assert "hunter2" not in repr(store)


def test_disputes_and_invalid_rows_are_kept_as_line_items(store):
    findings = (
        finding(
            "disputes",
            "ch_dp",
            stripe_amount=900,
            difference=900,
            dispute_id="dp_1",
            dispute_status="lost",
            detail="lost: fraudulent",
        ),
        finding(
            "invalid_rows",
            "",
            "",
            source="database",
            column="amount",
            detail="NULL in amount column 'amount'",
        ),
        finding(
            "missing_in_stripe", "pi_9", database_amount=100, difference=-100, database_id="pi_9"
        ),
    )
    store.save(result(findings=findings))
    rows = raw(
        store,
        "SELECT kind, payment_id, dispute_id, dispute_status, source, invalid_column, database_id "
        "FROM {s}reconciliation_line_items ORDER BY position",
    )
    assert rows == [
        ("disputes", "ch_dp", "dp_1", "lost", None, None, None),
        ("invalid_rows", "", None, None, "database", "amount", None),
        ("missing_in_stripe", "pi_9", None, None, None, None, "pi_9"),
    ]
    assert store.latest(DAY).findings == findings


# -- versions --------------------------------------------------------------------------------------
def at_version_3(store: ReportStore, saved: list[tuple[ReconciliationResult, str]]) -> None:
    """The store as the code before migration 4 left it: MIGRATIONS[:3] applied by hand, then
    each (result, source) saved in the old layout (no version, no trigger, UNIQUE (date,
    end_date))."""
    pg = store.path is None
    json_type, double = ("JSONB", "DOUBLE PRECISION") if pg else ("JSON", "DOUBLE")
    prefix = f'"{store.schema}".' if store.schema else ""
    statements = [(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"', ())] if store.schema else []
    statements.append(
        (
            f"CREATE TABLE {prefix}recon_schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            (),
        )
    )
    for version, sqls in MIGRATIONS[:3]:
        statements += [
            (q.replace("{s}", prefix).replace("{json}", json_type).replace("{double}", double), ())
            for q in sqls
        ]
        statements.append(
            (f"INSERT INTO {prefix}recon_schema_migrations (version) VALUES (?)", (version,))
        )
    for r, source in saved:
        details = _jsonable({**r.to_json_dict(), "_record": {"version": 1, **r.to_record()}})
        row = (
            str(uuid.uuid4()),
            r.date,
            r.end_date,
            r.timezone,
            r.currency,
            to_major(r.stripe_total, r.currency),
            to_major(r.database_total, r.currency),
            to_major(r.discrepancy, r.currency),
            r.stripe_total,
            r.database_total,
            r.discrepancy,
            r.discrepancy_percentage,
            to_major(r.gross_discrepancy, r.currency),
            r.gross_discrepancy,
            r.gross_discrepancy_percentage,
            r.tolerance_percentage,
            r.include_refunds,
            r.stripe_count,
            r.database_count,
            r.status,
            r.error,
            json.dumps(details),
            source,
            "old-run",
        )
        statements.append(
            (
                f"INSERT INTO {prefix}reconciliation_reports VALUES ({', '.join(['?'] * 21)}, "
                f"CAST(? AS {json_type}), ?, ?, now())",
                row,
            )
        )
    run_raw(store, statements)


def test_migration_from_version_3_keeps_each_report_as_version_1(store):
    scheduled, by_cli = result(), result(DAY + timedelta(days=1))
    at_version_3(store, [(scheduled, "dagster"), (by_cli, "cli")])
    # and the month close's tables, and the account of each report (`default`: the one account)
    assert store.migrate() == [4, 5, 6]
    assert (store.latest(DAY), store.latest(DAY + timedelta(days=1))) == (scheduled, by_cli)
    # Who started a Dagster run was not recorded before version 4: NULL, not a guess.
    kept = {
        (v["date"], v["version"], v["trigger"], v["run_id"])
        for v in store.versions(DAY, DAY + timedelta(days=1))
    }
    assert kept == {("2024-03-10", 1, None, "old-run"), ("2024-03-11", 1, "cli", "old-run")}
    assert {v["account"] for v in store.versions(DAY, DAY + timedelta(days=1))} == {"default"}
    store.save(
        result(stripe_total=100000)
    )  # migration 1's UNIQUE (date, end_date) would refuse this
    assert [v["version"] for v in store.versions(DAY)] == [2, 1]


def test_migrated_table_refuses_a_second_row_with_the_same_version(store):
    at_version_3(store, [(result(), "dagster")])
    store.migrate()
    schema = store.schema or "main"
    cols = ", ".join(
        c
        for (c,) in raw(
            store,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"'{schema}' AND table_name = 'reconciliation_reports' "
            "ORDER BY ordinal_position",
        )
        if c != "id"
    )
    prefix = f'"{store.schema}".' if store.schema else ""
    copy = (
        f"INSERT INTO {prefix}reconciliation_reports (id, {cols}) "
        f"SELECT 'copy', {cols} FROM {prefix}reconciliation_reports"
    )
    with pytest.raises((duckdb.ConstraintException, psycopg.errors.UniqueViolation)):
        run_raw(store, [(copy, ())])


def test_versions_list_every_version_newest_first_with_trigger_and_run(store):
    store.save(result(), run_id="r1", trigger="schedule")
    store.save(result(DAY + timedelta(days=1)), run_id="r2", trigger="backfill")
    store.save(result(stripe_total=100000), run_id="r3", trigger="late_change")
    store.save(result(DAY + timedelta(days=2)))  # outside the window
    versions = store.versions(DAY, DAY + timedelta(days=1))
    assert [(v["date"], v["version"], v["trigger"], v["run_id"]) for v in versions] == [
        ("2024-03-10", 2, "late_change", "r3"),
        ("2024-03-11", 1, "backfill", "r2"),
        ("2024-03-10", 1, "schedule", "r1"),
    ]
    assert all(tuple(v) == VERSION_KEYS for v in versions)
    stamps = [datetime.fromisoformat(v["generated_at"]) for v in versions]
    assert stamps == sorted(stamps, reverse=True) and all(
        t.utcoffset() == timedelta(0) for t in stamps
    )
    newest = versions[0]
    assert (
        newest["currency"],
        newest["stripe_total"],
        newest["database_total"],
        newest["discrepancy"],
    ) == ("USD", "1000.00", "1200.00", "-200.00")
    assert (newest["status"], newest["discrepancy_percentage"], newest["gross_discrepancy"]) == (
        "discrepancy_found",
        2.79,
        "39.57",
    )
    assert [v["changed"] for v in versions[1:]] == [[], []]  # first versions


def test_changed_names_the_charges_whose_class_or_amount_changed_and_no_other(store):
    same = finding("missing_in_stripe", "ch_same", database_amount=500, difference=-500)
    store.save(
        result(
            findings=(
                finding("missing_in_database", "ch_class", stripe_amount=1000, difference=1000),
                finding(
                    "amount_mismatches",
                    "ch_amount",
                    stripe_amount=1000,
                    database_amount=999,
                    difference=1,
                ),
                same,
            )
        )
    )
    store.save(
        result(
            findings=(
                same,
                finding(
                    "amount_mismatches",
                    "ch_class",
                    stripe_amount=1000,
                    database_amount=900,
                    difference=100,
                ),
                finding(
                    "amount_mismatches",
                    "ch_amount",
                    stripe_amount=1000,
                    database_amount=950,
                    difference=50,
                ),
            )
        )
    )
    newest, first = store.versions(DAY)
    usd = {"currency": "USD", "stripe_amount": "10.00"}
    assert first["changed"] == []
    assert newest["changed"] == [
        {
            "payment_id": "ch_amount",
            "before": {
                "kind": "amount_mismatches",
                **usd,
                "database_amount": "9.99",
                "difference": "0.01",
            },
            "after": {
                "kind": "amount_mismatches",
                **usd,
                "database_amount": "9.50",
                "difference": "0.50",
            },
        },
        {
            "payment_id": "ch_class",
            "before": {
                "kind": "missing_in_database",
                **usd,
                "database_amount": None,
                "difference": "10.00",
            },
            "after": {
                "kind": "amount_mismatches",
                **usd,
                "database_amount": "9.00",
                "difference": "1.00",
            },
        },
    ]


def test_changed_shows_findings_that_appeared_or_disappeared_against_null(store):
    store.save(
        result(
            findings=(
                finding("missing_in_database", "ch_fixed", stripe_amount=700, difference=700),
            )
        )
    )
    store.save(
        result(
            findings=(
                finding(
                    "missing_in_stripe", "ch_new", "JPY", database_amount=1500, difference=-1500
                ),
            )
        )
    )
    [newest, _] = store.versions(DAY)
    assert newest["changed"] == [
        {
            "payment_id": "ch_fixed",
            "after": None,
            "before": {
                "kind": "missing_in_database",
                "currency": "USD",
                "stripe_amount": "7.00",
                "database_amount": None,
                "difference": "7.00",
            },
        },
        {
            "payment_id": "ch_new",
            "before": None,
            "after": {
                "kind": "missing_in_stripe",
                "currency": "JPY",
                "stripe_amount": None,
                "database_amount": "1500",
                "difference": "-1500",
            },
        },
    ]


def test_concurrent_saves_of_one_day_get_distinct_versions_1_to_n(store):
    store.migrate()
    n = 8
    barrier, errors = threading.Barrier(n), []

    def run(i: int):
        barrier.wait()
        try:
            ReportStore(store.url, schema=store.schema).save(
                result(stripe_total=100000 + i), run_id=f"r{i}"
            )
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = raw(store, "SELECT version, run_id FROM {s}reconciliation_reports ORDER BY version")
    assert [v for v, _ in rows] == list(range(1, n + 1))
    assert len({r for _, r in rows}) == n
    assert store.latest(DAY).stripe_total == 100000 + int(
        rows[-1][1][1:]
    )  # the last to commit is current


def test_trigger_defaults_to_the_service_source_else_manual(store):
    for source in ("cli", "api", "dagster"):
        store.save(result(), source=source)
    assert [v["trigger"] for v in store.versions(DAY)] == ["manual", "api", "cli"]


def test_unknown_trigger_is_refused_before_anything_is_written(store):
    with pytest.raises(ValueError, match="trigger"):
        store.save(result(), trigger="cron")
    assert store.latest(DAY) is None


@pytest.mark.parametrize(
    ("tags", "trigger"),
    [
        ({"recon/trigger": "late_change", "dagster/schedule_name": "daily"}, "late_change"),
        ({"dagster/schedule_name": "daily_reconciliation"}, "schedule"),
        ({"dagster/backfill": "kqzbwgfv"}, "backfill"),
        ({}, "manual"),
        ({"recon/trigger": "whenever"}, "manual"),  # unknown: ignored, the run already reconciled
    ],
)
def test_run_tags_name_the_trigger(tags, trigger):
    assert trigger_of_run(tags) == trigger
