"""Acceptance, as a user runs it: `recon-dagster reconcile --json` on a New York DST day, against a
ledger table of other names in major units that keeps PaymentIntent ids for most rows, with
partial captures, an authorisation, declined attempts, disputes and rows nobody can reconcile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date
from decimal import Decimal

import duckdb
import pytest

from recon_dagster.testing.stripe_server import StripeServer, make_charge, make_dispute
from recon_dagster_tests.support.scenario import API_KEY, at

# A module-scoped fixture (an expensive world) is built once: every test of this file runs on one
# xdist worker.
pytestmark = pytest.mark.xdist_group("test_accept_intents")


TZ = "America/New_York"
SPRING = date(2024, 3, 10)  # 23 hours long in New York
LEDGER_DDL = """
create schema finance;
create table finance.ledger (
    ref varchar, total decimal(12, 2), ccy varchar, state varchar, booked_at timestamp,
    refunded decimal(12, 2)
)
"""


def ts(hh: int, mm: int = 0) -> int:
    return int(at(SPRING, hh, mm, tz=TZ).timestamp())


CHARGES = [
    make_charge("ch_ok", 1999, created=ts(0, 30), payment_intent="pi_ok"),
    make_charge("ch_retry_1", 4500, created=ts(8), payment_intent="pi_retry", status="failed"),
    make_charge("ch_retry_2", 4500, created=ts(8, 1), payment_intent="pi_retry"),
    make_charge("ch_twice", 2500, created=ts(9), payment_intent="pi_twice"),
    make_charge("ch_declined", 4200, created=ts(10), payment_intent="pi_declined", status="failed"),
    make_charge(
        "ch_hotel", 20000, created=ts(11), payment_intent="pi_hotel", amount_captured=15000
    ),
    make_charge("ch_auth", 8000, created=ts(12), payment_intent="pi_auth", captured=False),
    make_charge("ch_dp_lost", 2000, created=ts(13), payment_intent="pi_dp_lost", disputed=True),
    make_charge("ch_dp_open", 3000, created=ts(14), payment_intent="pi_dp_open", disputed=True),
    make_charge("ch_dp_won", 1000, created=ts(15), payment_intent="pi_dp_won", disputed=True),
    make_charge("ch_missing", 5000, created=ts(16), payment_intent="pi_missing"),
    make_charge("ch_garbled", 700, created=ts(17)) | {"amount": "7.00"},  # Stripe never sends this
]
DISPUTES = [
    make_dispute("dp_lost", "ch_dp_lost", 2000, status="lost", reason="fraudulent", created=ts(20)),
    make_dispute(
        "dp_open",
        "ch_dp_open",
        3000,
        status="needs_response",
        reason="product_not_received",
        created=ts(20),
    ),
    make_dispute("dp_won", "ch_dp_won", 1000, status="won", reason="duplicate", created=ts(20)),
]
ROWS = [
    ("pi_ok", "19.99", "USD", "paid"),
    ("pi_retry", "45.00", "usd", "paid"),
    ("pi_twice", "25.00", "USD", "paid"),
    ("ch_twice", "25.00", "USD", "paid"),
    ("pi_declined", "42.00", "USD", "paid"),
    ("ch_hotel", "200.00", "USD", "paid"),
    ("pi_auth", "80.00", "USD", "paid"),
    ("ch_dp_lost", "20.00", "USD", "paid"),
    ("pi_dp_open", "30.00", "USD", "paid"),
    ("ch_dp_won", "10.00", "USD", "paid"),
    ("cs_checkout_1", "19.00", "USD", "paid"),
    ("ch_no_amount", None, "USD", "paid"),
    ("ch_xyz", "5.00", "xyz", "paid"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("accept")
    db = root / "shop.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(LEDGER_DDL)
        for i, (ref, total, ccy, state) in enumerate(ROWS):
            booked = at(SPRING, 0, 31 + i, tz=TZ).astimezone(UTC).replace(tzinfo=None)
            con.execute(
                "insert into finance.ledger values (?, ?, ?, ?, ?, 0)",
                [ref, Decimal(total) if total else None, ccy, state, booked],
            )
    with StripeServer(CHARGES, api_key=API_KEY, disputes=DISPUTES) as server:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RECON_", "STRIPE_", "BILLING_"))
        } | {
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_API_BASE": server.url,
            "RECON_TIMEZONE": TZ,
            "RECON_DATABASE_URL": f"duckdb:///{db}",
            "RECON_PAYMENTS_TABLE": "finance.ledger",
            "RECON_PAYMENTS_ID_COLUMN": "ref",
            "RECON_PAYMENTS_AMOUNT_COLUMN": "total",
            "RECON_PAYMENTS_AMOUNT_UNIT": "major",
            "RECON_PAYMENTS_CURRENCY_COLUMN": "ccy",
            "RECON_PAYMENTS_STATUS_COLUMN": "state",
            "RECON_PAYMENTS_CREATED_AT_COLUMN": "booked_at",
            "RECON_PAYMENTS_REFUNDED_COLUMN": "refunded",
            "RECON_REPORT_STORE_URL": f"duckdb:///{root / 'recon.duckdb'}",
        }
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "recon_dagster.cli",
                "reconcile",
                "--start",
                SPRING.isoformat(),
                "--json",
            ],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 1, out.stderr[-3000:]  # discrepancy_found
    return json.loads(out.stdout)


def ids(report, kind) -> list[str]:
    return sorted(item.get("payment_id") or item.get("id") or "" for item in report[kind])


def test_every_class_is_counted(report):
    assert {k: v for k, v in report["counts"].items() if v} == {
        "missing_in_database": 1,
        "amount_mismatches": 1,
        "status_mismatches": 2,
        "duplicates_in_database": 1,
        "disputes": 3,
        "invalid_rows": 4,
    }


def test_payment_intent_rows_match_their_succeeded_charge_and_declined_attempts_stay_quiet(report):
    everything = {
        i.get("payment_id")
        for k in report["counts"]
        for i in report.get(k, [])
        if isinstance(i, dict)
    }
    assert not {"ch_ok", "ch_retry_1", "ch_retry_2"} & everything
    assert report["missing_in_database"] == ["ch_missing"]


def test_an_intent_and_its_charge_in_two_rows_are_one_duplicate(report):
    [dup] = report["duplicates_in_database"]
    assert (dup["payment_id"], dup["database_count"]) == ("ch_twice", 2)


def test_status_mismatches_name_the_declined_intent_and_the_authorisation(report):
    by_id = {i["payment_id"]: i for i in report["status_mismatches"]}
    assert by_id["ch_declined"]["database_id"] == "pi_declined"
    assert (
        by_id["ch_auth"]["detail"] == "authorized, not captured"
        and by_id["ch_auth"]["database_id"] == "pi_auth"
    )


def test_stripe_counts_what_it_captured(report):
    [hotel] = report["amount_mismatches"]
    assert (hotel["payment_id"], hotel["stripe_amount"], hotel["database_amount"]) == (
        "ch_hotel",
        "150.00",
        "200.00",
    )


def test_disputes_are_listed_and_a_lost_one_counts_against_the_tolerance(report):
    items = {d["id"]: d for d in report["disputes"]}
    assert {
        k: (d["dispute_id"], d["dispute_status"], d["amount"], d["currency"])
        for k, d in items.items()
    } == {
        "ch_dp_lost": ("dp_lost", "lost", "20.00", "USD"),
        "ch_dp_open": ("dp_open", "needs_response", "30.00", "USD"),
        "ch_dp_won": ("dp_won", "won", "10.00", "USD"),
    }
    [usd] = report["totals_by_currency"]
    assert (usd["disputes_lost"], usd["disputes_open"]) == ("20.00", "30.00")
    assert any("chargeback" in r for r in report["recommendations"])


def test_rows_nobody_can_reconcile_are_listed_with_column_and_reason(report):
    rows = {r["id"]: r for r in report["invalid_rows"]}
    assert set(rows) == {"cs_checkout_1", "ch_no_amount", "ch_xyz", "ch_garbled"}
    assert (rows["ch_no_amount"]["source"], rows["ch_no_amount"]["column"]) == ("database", "total")
    assert (
        rows["ch_xyz"]["reason"] == "XYZ in currency column 'ccy' is not an ISO 4217 currency code"
    )
    assert rows["cs_checkout_1"]["column"] == "id" and rows["ch_garbled"]["source"] == "stripe"
    assert all(r["created"] for r in rows.values())
    assert any("could not be reconciled" in r for r in report["recommendations"])


def test_the_rest_of_the_day_is_reconciled(report):
    assert report["status"] == "discrepancy_found" and report["currency"] == "USD"
    # Collected: 19.99 + 45 + 25 + 150 (captured) + 20 + 30 + 10 + 50; the authorisation and the
    # garbled charge are not.
    assert report["stripe_total"] == "349.99"
    assert (report["stripe_count"], report["database_count"]) == (
        11,
        10,
    )  # what was reconciled, invalid rows apart


def test_an_intent_row_whose_charge_is_before_midnight_is_a_timing_difference(tmp_path, serve):
    from recon_dagster import Settings, create_billing_reconciliation_service

    before_midnight = int(at(SPRING, 0, tz=TZ).timestamp()) - 2
    server = serve(
        [make_charge("ch_prev", 1_500, created=before_midnight, payment_intent="pi_prev")],
        api_key=API_KEY,
    )
    db = tmp_path / "shop.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table payments (stripe_charge_id varchar, amount bigint, currency varchar, "
            "status varchar, created_at timestamptz)"
        )
        con.execute(
            "insert into payments values ('pi_prev', 1500, 'USD', 'paid', ?)",
            [at(SPRING, 0, 0, 3, tz=TZ)],
        )
    settings = Settings.from_env(
        {
            "STRIPE_API_KEY": API_KEY,
            "STRIPE_API_BASE": server.url,
            "RECON_TIMEZONE": TZ,
            "RECON_DATABASE_URL": f"duckdb:///{db}",
            "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
        },
        base_dir=tmp_path,
    )
    result = create_billing_reconciliation_service(settings).reconcile(SPRING)
    [f] = result.findings
    assert (f.kind, f.payment_id, f.stripe_amount) == ("timing_differences", "pi_prev", 1_500)
