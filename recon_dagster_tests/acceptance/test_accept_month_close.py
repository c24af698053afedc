"""The month close end to end through the CLI's `--json`: a month with charges, a partial
refund, a lost, a won and an open dispute, fees, an adjustment, a reserve, a failed payout and a
payout in transit, in New York (November has the DST day), ties out to the local Stripe
server's `GET /v1/balance` to the cent; its journal and workbook say the same."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from recon_dagster.definitions import build_defs
from recon_dagster.settings import Settings
from recon_dagster.testing.month_activity import a_month
from recon_dagster.testing.stripe_objects import make_balance_transaction
from recon_dagster_tests.support.scenario import API_KEY

ZONE = "America/New_York"
MONTH = "2026-11"
FIRST = date(2026, 11, 1)
MONTH_END = int(datetime(2026, 12, 1, tzinfo=ZoneInfo(ZONE)).timestamp())


@pytest.fixture
def month():
    return a_month(FIRST, ZONE)


@pytest.fixture
def env(serve, month, tmp_path):
    server = serve(
        month.charges,
        api_key=API_KEY,
        disputes=month.disputes,
        payouts=month.payouts,
        balance_transactions=month.transactions,
    )
    return {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_TIMEZONE": ZONE,
        "RECON_START_DATE": "2026-10-01",
        "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
    }, server


def close_cli(env: dict[str, str], cwd, *args: str) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "recon_dagster.cli", "close", "--month", MONTH, *args, "--json"],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def net_before(transactions: list[dict], moment: int) -> int:
    return sum(t["net"] for t in transactions if t["created"] < moment)


def test_the_month_ties_out_to_stripes_balance_to_the_cent(env, month, tmp_path):
    settings, server = env
    code, out = close_cli(settings, tmp_path)

    [usd] = out["currencies"]
    closing = net_before(month.transactions, MONTH_END)
    after = sum(t["net"] for t in month.transactions if t["created"] >= MONTH_END)
    stripe_now = sum(
        b["amount"] for part in ("available", "pending") for b in server.balance()[part]
    )
    assert (code, out["status"], usd["currency"]) == (0, "tied_out", "USD")
    assert Decimal(usd["closing"]) == Decimal(closing) / 100
    assert Decimal(usd["stripe_balance"]) == Decimal(stripe_now - after) / 100
    assert usd["difference"] == "0.00"


def test_the_roll_forward_adds_up_opening_activity_and_payouts(env, month, tmp_path):
    settings, _ = env
    _, out = close_cli(settings, tmp_path)

    [usd] = out["currencies"]
    start = int(datetime(2026, 11, 1, tzinfo=ZoneInfo(ZONE)).timestamp())
    activity = sum(Decimal(v) for v in usd["activity"].values())
    assert Decimal(usd["opening"]) == Decimal(net_before(month.transactions, start)) / 100
    assert Decimal(usd["opening"]) + activity + Decimal(usd["payouts"]) == Decimal(usd["closing"])
    assert usd["payouts"] == "-300.00"  # 50 failed and returned, 200 paid, 100 in transit


def test_activity_is_summed_by_stripes_reporting_category_with_fees_apart(env, month, tmp_path):
    settings, _ = env
    _, out = close_cli(settings, tmp_path)

    [usd] = out["currencies"]
    start = int(datetime(2026, 11, 1, tzinfo=ZoneInfo(ZONE)).timestamp())
    expected: dict[str, int] = defaultdict(int)
    for t in month.transactions:
        if start <= t["created"] < MONTH_END:
            if t["reporting_category"] not in ("payout", "payout_reversal"):
                expected[t["reporting_category"]] += t["amount"]
            expected["fee"] -= t["fee"]
    cents = Decimal("0.01")
    assert usd["activity"] == {
        k: str((Decimal(v) / 100).quantize(cents)) for k, v in sorted(expected.items())
    }
    assert set(usd["activity"]) >= {
        "charge", "refund", "dispute", "dispute_reversal", "fee", "other_adjustment",
        "risk_reserved_funds",
    }  # fmt: skip


def test_reconciling_items_name_the_payout_in_transit_the_open_dispute_and_pending_funds(
    env, month, tmp_path
):
    settings, _ = env
    _, out = close_cli(settings, tmp_path)

    [usd] = out["currencies"]
    items = {(i["kind"], i["id"]): i for i in usd["reconciling_items"]}
    [transit] = month.in_transit
    [dispute] = month.open_disputes
    assert items[("payout_in_transit", transit)]["amount"] == "100.00"
    assert items[("open_dispute", dispute)]["amount"] == "90.00"
    pending = items[("funds_not_yet_available", "pending USD")]
    assert Decimal(pending["amount"]) == Decimal(4_000 - (4_000 * 29 // 1000 + 30)) / 100


def test_the_journal_balances_and_is_written_as_csv_per_day_and_currency(env, tmp_path):
    settings, _ = env
    path = tmp_path / "journal.csv"
    _, out = close_cli(settings, tmp_path, "--journal", str(path))

    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    sums: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in rows:
        sums[(row["date"], row["currency"])][0] += Decimal(row["debit"] or 0)
        sums[(row["date"], row["currency"])][1] += Decimal(row["credit"] or 0)
    assert out["journal"] == {"lines": len(rows), "balanced": True, "unbalanced": []}
    assert all(debit == credit for debit, credit in sums.values())
    assert {"1010 Stripe clearing", "4000 Sales revenue", "6150 Chargebacks", "1000 Bank"} <= {
        row["account"] for row in rows
    }


def test_the_workbook_opens_in_a_spreadsheet_reader_with_money_as_numbers(env, tmp_path):
    settings, _ = env
    path = tmp_path / "close.xlsx"
    _, out = close_cli(settings, tmp_path, "--xlsx", str(path))

    book = openpyxl.load_workbook(path)
    assert book.sheetnames == [
        "Summary", "Roll-forward", "Reconciling items", "Journal", "Payouts", "Exceptions"
    ]  # fmt: skip
    summary = {row[0].value: row[1] for row in book["Summary"].iter_rows(min_row=6)}
    closing = summary["Closing balance"]
    [usd] = out["currencies"]
    assert isinstance(closing.value, float) and closing.number_format == "#,##0.00"
    assert Decimal(str(closing.value)) == Decimal(usd["closing"])
    journal = list(book["Journal"].iter_rows(min_row=2, values_only=True))
    assert sum(Decimal(str(r[3] or 0)) for r in journal) == sum(
        Decimal(str(r[4] or 0)) for r in journal
    )


def test_a_transaction_without_a_currency_is_quarantined_and_the_month_not_tied_out(env, tmp_path):
    settings, server = env
    at = int(datetime(2026, 11, 15, 12, tzinfo=UTC).timestamp())
    bad = make_balance_transaction("txn_broken", 999, created=at, currency="usd")
    bad["currency"] = None
    server.add_balance_transactions([bad])

    code, out = close_cli(settings, tmp_path)

    assert (code, out["status"]) == (1, "not_tied_out")
    assert out["quarantined"] == [
        {
            "id": "txn_broken",
            "column": "currency",
            "reason": "balance transaction txn_broken: currency None is not an ISO 4217 code",
        }
    ]


def test_a_tied_out_month_is_locked_and_a_later_close_keeps_its_figures(env, tmp_path):
    settings, server = env
    code, locked = close_cli(settings, tmp_path, "--lock", "--actor", "controller@example.com")
    at = int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp())
    server.add_balance_transactions([make_balance_transaction("txn_late", 100, created=at)])

    _, again = close_cli(settings, tmp_path)

    assert (code, locked["locked"], locked["version"]) == (0, True, 1)
    assert (again["locked"], again["version"]) == (True, None)  # nothing stored over the lock


def test_unlock_needs_a_reason_and_reopens_the_month(env, tmp_path):
    settings, _ = env
    close_cli(settings, tmp_path, "--lock")

    refused, _ = close_cli(settings, tmp_path, "--unlock")
    code, out = close_cli(settings, tmp_path, "--unlock", "--reason", "late refund")

    assert refused == 2
    assert (code, out["locked"], out["version"]) == (0, False, 2)


def test_an_unmapped_category_stops_the_close_naming_it(env, tmp_path):
    settings, server = env
    at = int(datetime(2026, 11, 21, 12, tzinfo=UTC).timestamp())
    server.add_balance_transactions(
        [make_balance_transaction("txn_new", 500, created=at, reporting_category="brand_new")]
    )

    code, out = close_cli(settings, tmp_path)

    assert (code, out["status"]) == (2, "error")
    assert "'brand_new'" in out["error"] and "RECON_GL_MAPPING" in out["error"]


def test_the_dagster_jobs_roll_each_day_forward_and_close_the_month_tied_out(
    env, instance, monkeypatch, tmp_path
):
    settings, _ = env
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    defs = build_defs(Settings.from_env())
    november = {
        "dagster/asset_partition_range_start": "2026-11-01",
        "dagster/asset_partition_range_end": "2026-11-30",
    }

    days = defs.resolve_job_def("balance_rollforward_job").execute_in_process(
        instance=instance, tags=november
    )
    month = defs.resolve_job_def("month_close_job").execute_in_process(
        instance=instance, partition_key="2026-11-01"
    )

    ties = [e for e in days.get_asset_check_evaluations() if e.check_name == "balance_ties_out"]
    assert days.success and len(ties) == 30 and all(e.passed for e in ties)
    [closed] = month.get_asset_check_evaluations()
    assert (closed.check_name, closed.passed) == ("month_tied_out", True)
    metadata = month.asset_materializations_for_node("month_close")[0].metadata
    assert metadata["status"].value == "tied_out"


def test_opening_balances_replace_the_history_before_the_start_date(env, tmp_path):
    settings, server = env
    start = {"RECON_START_DATE": "2026-11-01", "RECON_OPENING_BALANCES": "usd=485.20"}
    server.clear_requests()

    code, out = close_cli({**settings, **start}, tmp_path)

    [usd] = out["currencies"]
    assert (code, usd["opening"], usd["difference"]) == (0, "485.20", "0.00")
    listed = [r for r in server.requests if r.path == "/v1/balance_transactions"]
    november = int(datetime(2026, 11, 1, tzinfo=ZoneInfo(ZONE)).timestamp())
    assert min(int(r.query["created[gte]"]) for r in listed) == november  # no earlier history


def test_a_month_before_the_opening_balances_apply_is_an_error(env, tmp_path):
    settings, _ = env
    start = {"RECON_START_DATE": "2026-12-01", "RECON_OPENING_BALANCES": "usd=0"}

    code, out = close_cli({**settings, **start}, tmp_path)

    assert (code, out["status"]) == (2, "error")
    assert out["error"].startswith("RECON_OPENING_BALANCES: is the balance at 2026-12-01T05:00:00")


def test_an_output_path_in_no_folder_is_refused_before_anything_is_stored_or_locked(env, tmp_path):
    settings, _ = env
    nowhere = str(tmp_path / "no" / "such" / "close.xlsx")

    code, out = close_cli(settings, tmp_path, "--lock", "--xlsx", nowhere)
    _, after = close_cli(settings, tmp_path)

    assert (code, out["status"]) == (2, "error") and out["error"].startswith("--xlsx: ")
    assert (after["locked"], after["version"]) == (False, 1)
