"""Payout reconciliation end to end: the CLI's `--json` on PostgreSQL with a bank table of other
names in major units, and the Dagster job with its check on the default instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, time

import dagster as dg
import pytest

from recon_dagster.definitions import build_defs
from recon_dagster.settings import Settings
from recon_dagster.testing.stripe_server import (
    make_balance_transaction,
    make_charge,
    make_payout,
    payout_transactions,
)
from recon_dagster_tests.support.databases import execute
from recon_dagster_tests.support.scenario import API_KEY

DAY = date(2024, 7, 10)
SOLD = int(datetime(2024, 7, 8, 12, tzinfo=UTC).timestamp())


def midnight(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


def fee(amount: int) -> int:
    return amount * 29 // 1000 + 30


def automatic_payout(
    pid: str, lines: list[tuple[str, int, str, str | None]], *, extra: int = 0, **kwargs
) -> tuple[dict, list[dict]]:
    """A payout of these (txn id, amount, type, source) lines, fees on charges; `extra` puts its
    amount off."""
    txns = [
        make_balance_transaction(
            tid,
            amount,
            fee=fee(amount) if kind == "charge" else 0,
            type=kind,
            source=source,
            payout=pid,
            created=SOLD,
        )
        for tid, amount, kind, source in lines
    ]
    payout = make_payout(
        pid, sum(t["net"] for t in txns) + extra, arrival_date=midnight(DAY), **kwargs
    )
    return payout, [*txns, payout_transactions(payout)]


@pytest.fixture
def world(serve, postgres_schema, tmp_path):
    """Five payouts arriving on DAY, each with its story, an orders table and a bank statement."""
    charges = [
        make_charge(cid, amount, created=SOLD)
        for cid, amount in (
            ("ch_a", 10_000),
            ("ch_b", 5_000),
            ("ch_c", 2_500),
            ("ch_d", 3_000),
            ("ch_e", 4_000),
        )
    ]
    ok, ok_txns = automatic_payout(
        "po_ok",
        [
            ("txn_a", 10_000, "charge", "ch_a"),
            ("txn_b", 5_000, "charge", "ch_b"),
            ("txn_r", -1_000, "refund", "re_1"),
        ],
        trace_id="TRACE-OK-1",
    )
    off, off_txns = automatic_payout(
        "po_off", [("txn_c", 2_500, "charge", "ch_c")], extra=100
    )  # ch_c was never recorded
    lost, lost_txns = automatic_payout(
        "po_lost", [("txn_d", 3_000, "charge", "ch_d")]
    )  # recorded as 29.00, never reached the bank
    failed, failed_txns = automatic_payout(
        "po_failed",
        [("txn_e", 4_000, "charge", "ch_e")],
        status="failed",
        failure_code="account_closed",
    )
    manual = make_payout("po_manual", 7_777, arrival_date=midnight(DAY), automatic=False)
    server = serve(
        charges,
        api_key=API_KEY,
        payouts=[ok, off, lost, failed, manual],
        balance_transactions=ok_txns + off_txns + lost_txns + failed_txns,
    )
    url = postgres_schema.url
    execute(
        url,
        "create table orders (charge_ref text, total_major numeric(12, 2), cur text, state text, "
        "placed_at timestamptz)",
    )
    execute(
        url,
        "insert into orders values ({0}, {0}, {0}, {0}, {0})",
        [
            ("ch_a", "100.00", "USD", "paid", datetime(2024, 7, 8, 12, 0, 3, tzinfo=UTC)),
            ("ch_b", "50.00", "USD", "paid", datetime(2024, 7, 8, 12, 0, 3, tzinfo=UTC)),
            ("ch_d", "29.00", "USD", "paid", datetime(2024, 7, 8, 12, 0, 3, tzinfo=UTC)),
            ("ch_e", "40.00", "USD", "paid", datetime(2024, 7, 8, 12, 0, 3, tzinfo=UTC)),
        ],
    )
    execute(
        url,
        "create table bank_statement (line_id text, value_date date, amount_major numeric(12, 2), "
        "ccy text, memo text)",
    )
    execute(
        url,
        "insert into bank_statement values ({0}, {0}, {0}, {0}, {0})",
        [
            (
                "L1",
                date(2024, 7, 11),
                f"{ok['amount'] / 100:.2f}",
                "USD",
                "STRIPE PAYOUT TRACE-OK-1",
            ),
            ("L2", date(2024, 7, 10), f"{off['amount'] / 100:.2f}", "USD", "STRIPE"),
            ("L3", date(2024, 7, 12), "77.77", "USD", "STRIPE PAYOUT"),
            ("L4", date(2024, 7, 10), "123.45", "USD", "STRIPE TRANSFER"),  # no payout claims it
            ("L5", date(2024, 7, 10), f"{lost['amount'] / 100:.2f}", "EUR", "RENT REFUND"),
        ],
    )  # another currency, not Stripe's
    return {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_DATABASE_URL": url,
        "RECON_PAYMENTS_TABLE": "orders",
        "RECON_PAYMENTS_ID_COLUMN": "charge_ref",
        "RECON_PAYMENTS_AMOUNT_COLUMN": "total_major",
        "RECON_PAYMENTS_AMOUNT_UNIT": "major",
        "RECON_PAYMENTS_CURRENCY_COLUMN": "cur",
        "RECON_PAYMENTS_STATUS_COLUMN": "state",
        "RECON_PAYMENTS_CREATED_AT_COLUMN": "placed_at",
        "RECON_BANK_TABLE": "bank_statement",
        "RECON_BANK_ID_COLUMN": "line_id",
        "RECON_BANK_AMOUNT_COLUMN": "amount_major",
        "RECON_BANK_AMOUNT_UNIT": "major",
        "RECON_BANK_CURRENCY_COLUMN": "ccy",
        "RECON_BANK_DATE_COLUMN": "value_date",
        "RECON_BANK_REFERENCE_COLUMN": "memo",
        "RECON_START_DATE": "2024-07-01",
        "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
    }


def payouts_cli(env: dict[str, str], cwd, *args: str) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "recon_dagster.cli", "payouts", *args, "--json"],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, json.loads(done.stdout)


def test_cli_json_names_every_problem_of_the_day(world, tmp_path):
    code, out = payouts_cli(world, tmp_path, "--start", DAY.isoformat())

    assert (code, out["status"], out["error"]) == (1, "problems", None)
    by_id = {p["id"]: p for p in out["payouts"]}
    assert {pid: p["problems"] for pid, p in by_id.items()} == {
        "po_ok": [],
        "po_off": ["itemization_mismatch", "charges_missing_in_database"],
        "po_lost": ["charge_amount_mismatch", "missing_in_bank"],
        "po_failed": ["failed"],
        "po_manual": [],
    }
    ok = by_id["po_ok"]
    assert (
        ok["amount"],
        ok["itemized_net"],
        ok["difference"],
        ok["charges"],
        ok["refunds"],
        ok["fees"],
    ) == ("135.05", "135.05", "0.00", "150.00", "-10.00", "-4.95")
    assert (
        ok["transaction_count"],
        ok["bank_deposit_id"],
        ok["arrival_date"],
        ok["automatic"],
    ) == (3, "L1", "2024-07-10", True)
    assert (by_id["po_off"]["difference"], by_id["po_off"]["charges_missing_in_database"]) == (
        "1.00",
        ["ch_c"],
    )
    assert (by_id["po_failed"]["status"], by_id["po_failed"]["failure_code"]) == (
        "failed",
        "account_closed",
    )
    assert (by_id["po_manual"]["itemized_net"], by_id["po_manual"]["bank_deposit_id"]) == (
        None,
        "L3",
    )
    assert out["deposits_without_payout"] == [
        {
            "id": "L4",
            "amount": "123.45",
            "currency": "USD",
            "date": "2024-07-10",
            "reference": "STRIPE TRANSFER",
        }
    ]
    assert out["counts"] == {
        "payouts": 5,
        "itemization_mismatch": 1,
        "charges_missing_in_database": 1,
        "charge_amount_mismatch": 1,
        "missing_in_bank": 1,
        "awaiting_bank": 0,
        "failed": 1,
        "deposits_without_payout": 1,
    }


def test_cli_exit_code_is_2_with_a_json_error_for_a_missing_bank_table(world, tmp_path):
    code, out = payouts_cli(
        {**world, "RECON_BANK_TABLE": "no_such_table"}, tmp_path, "--start", DAY.isoformat()
    )

    assert (
        code == 2
        and out["status"] == "error"
        and out["error"].startswith("RECON_BANK_TABLE: table no_such_table not found")
    )


def test_the_dagster_job_stores_the_day_and_its_check_fails_with_error_severity(
    world, instance, monkeypatch, tmp_path
):
    for name, value in world.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    defs = build_defs(Settings.from_env())

    run = defs.resolve_job_def("payout_reconciliation_job").execute_in_process(
        instance=instance, partition_key=DAY.isoformat()
    )

    assert run.success
    [evaluation] = [
        e for e in run.get_asset_check_evaluations() if e.check_name == "payouts_reconciled"
    ]
    assert (evaluation.passed, evaluation.severity, evaluation.partition) == (
        False,
        dg.AssetCheckSeverity.ERROR,
        DAY.isoformat(),
    )
    counts = evaluation.metadata["counts"].value
    assert (counts["payouts"], counts["failed"], counts["missing_in_bank"]) == (5, 1, 1)
