"""A platform with three connected accounts (one in JPY), through Dagster on the SQLite
DAGSTER_HOME: the accounts' sensor makes them partitions, each account's day is reconciled with
its own `Stripe-Account` calls and its own rows, and each finding lands on its own account."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import duckdb
import pytest

from recon_dagster.definitions import build_defs
from recon_dagster.defs.alerts.sensors import build_alert_sensors
from recon_dagster.defs.shared import (
    BALANCE_JOB,
    DAILY_JOB,
    MONTH_CLOSE_JOB,
    PAYOUTS_JOB,
    REPORT_CHECK,
)
from recon_dagster.settings import ConfigError, Settings
from recon_dagster.stores.close_store import CloseStore
from recon_dagster.stores.payout_store import PayoutStore
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.connect_money import destination_charge
from recon_dagster.testing.stripe_server import (
    StripeServer,
    make_balance_transaction,
    make_charge,
    make_dispute,
    make_payout,
    payout_transactions,
)
from recon_dagster_tests.support.accounts import add_accounts, cli_json, late_changes_tick
from recon_dagster_tests.support.alert_receivers import pd_res, slack_res, tick
from recon_dagster_tests.support.receivers import pagerduty_receiver, slack_receiver
from recon_dagster_tests.support.scenario import API_KEY, at

DAY = date(2024, 7, 10)
ARRIVAL = date(2024, 7, 12)  # the payouts of DAY's charges
USD_A, USD_B, JPY = "acct_1Usa", "acct_2Usb", "acct_3Jpy"
PLATFORM = "platform"  # the platform's own account


@pytest.fixture
def platform(tmp_path, monkeypatch):
    """The platform's server with three connected accounts, and an orders table whose
    `stripe_account` column says whose each row is; one of B's charges was never recorded. One
    of A's sales is a destination charge made on the platform, with a 10% application fee."""
    server = StripeServer([], api_key=API_KEY).start()
    destination = destination_charge(
        "ch_dest",
        4_000,
        USD_A,
        created=int(at(DAY, 12).timestamp()),
        application_fee=400,
        on_behalf_of=True,
    )
    sales = {
        USD_A: [("ch_a1", 1_000, "usd"), ("ch_a2", 2_000, "usd")],
        USD_B: [("ch_b1", 1_500, "usd"), ("ch_b2", 700, "usd")],
        JPY: [("ch_j1", 5_000, "jpy")],
    }
    payouts = {}
    for account, charges in sales.items():
        connected = server.add_connected_account(account, default_currency=charges[0][2])
        if account == USD_A:
            server.add_sale(destination, USD_A)
        connected.add_charges(
            make_charge(cid, amount, currency, created=int(at(DAY, 12).timestamp()))
            for cid, amount, currency in charges
        )
        # Each account's own payout of its day's charges (3% fee), arriving two days later.
        pid = f"po_{account[-3:].lower()}"
        txns = [
            make_balance_transaction(
                f"txn_{cid}",
                amount,
                fee=amount * 3 // 100,
                currency=currency,
                source=cid,
                payout=pid,
                created=int(at(DAY, 12).timestamp()),
            )
            for cid, amount, currency in charges
        ]
        if account == USD_A:  # the destination charge's payment, its fee paid to the platform
            txns += [dict(t, _payout=pid) for t in destination.account_transactions]
        payout = make_payout(
            pid,
            sum(t["net"] for t in txns),
            charges[0][2],
            arrival_date=int(at(ARRIVAL, 0).timestamp()),
        )
        connected.add_payouts([payout])
        connected.add_balance_transactions([*txns, payout_transactions(payout)])
        payouts[account] = payout
    # The platform's own charge: not any connected account's.
    server.add_charges([make_charge("ch_platform", 9_999, created=int(at(DAY).timestamp()))])
    db = tmp_path / "app.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table payments (stripe_charge_id varchar, amount bigint, currency varchar, "
            "status varchar, created_at timestamptz, stripe_account varchar)"
        )
        for account, charges in sales.items():
            for cid, amount, currency in charges:
                if cid != "ch_b2":
                    con.execute(
                        "insert into payments values (?, ?, ?, 'succeeded', ?, ?)",
                        [cid, amount, currency.upper(), at(DAY, 12, 0, 2), account],
                    )
        con.execute(
            "insert into payments values ('ch_dest', 4000, 'USD', 'succeeded', ?, ?)",
            [at(DAY, 12, 0, 2), USD_A],
        )
        # The platform's own sale: a row with no account.
        con.execute(
            "insert into payments values ('ch_platform', 9999, 'USD', 'succeeded', ?, NULL)",
            [at(DAY, 0, 0, 2)],
        )
        # The bank: A's and the JPY account's payouts arrived; B's never did.
        con.execute(
            "create table bank_lines (id varchar, booked_on date, amount bigint, "
            "currency varchar, stripe_account varchar)"
        )
        for n, account in enumerate((USD_A, JPY)):
            p = payouts[account]
            con.execute(
                "insert into bank_lines values (?, ?, ?, ?, ?)",
                [f"L{n}", ARRIVAL, p["amount"], p["currency"].upper(), account],
            )
    env = {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_STRIPE_CONNECT": "1",
        "RECON_ACCOUNT_COLUMN": "stripe_account",
        "RECON_DATABASE_URL": f"duckdb:///{db}",
        "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
        "RECON_START_DATE": "2024-07-01",
        "RECON_BANK_TABLE": "bank_lines",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    yield server, tmp_path
    server.stop()


def test_each_finding_lands_on_its_own_account(platform, instance):
    server, root = platform
    defs = build_defs(Settings.from_env())
    assert add_accounts(defs, instance) == [PLATFORM, USD_A, USD_B, JPY]
    job = defs.resolve_job_def(DAILY_JOB)
    checks = {}
    for account in (PLATFORM, USD_A, USD_B, JPY):
        result = job.execute_in_process(instance=instance, partition_key=f"{account}|{DAY}")
        assert result.success
        for evaluation in result.get_asset_check_evaluations():
            checks[evaluation.partition] = evaluation

    store = ReportStore(f"duckdb:///{root / 'recon.duckdb'}")
    reports = {a: store.for_account(a).latest(DAY) for a in (PLATFORM, USD_A, USD_B, JPY)}
    assert {a: r.missing_in_database for a, r in reports.items()} == {
        PLATFORM: [],
        USD_A: [],
        USD_B: ["ch_b2"],
        JPY: [],
    }
    assert {a: (r.currency, r.stripe_total, r.database_total) for a, r in reports.items()} == {
        PLATFORM: ("USD", 9_999, 9_999),  # its own sale, not A's destination charge
        USD_A: ("USD", 7_000, 7_000),  # with the destination charge made on the platform
        USD_B: ("USD", 2_200, 1_500),
        JPY: ("JPY", 5_000, 5_000),  # yen have no minor unit: 5,000 yen, not 50.00
    }
    assert store.latest(DAY) is None  # nothing landed on a `default` account
    assert {p: e.passed for p, e in checks.items()} == {
        f"{PLATFORM}|{DAY}": True,
        f"{USD_A}|{DAY}": True,
        f"{USD_B}|{DAY}": False,
        f"{JPY}|{DAY}": True,
    }
    assert checks[f"{USD_B}|{DAY}"].metadata["account"].value == USD_B
    assert (checks[f"{USD_B}|{DAY}"].description or "").startswith("Account acct_2Usb: ")
    # Each account's charges were listed with its own header; the platform's without one.
    listings = [r for r in server.requests if r.path == "/v1/charges"]
    assert {r.account for r in listings} == {None, USD_A, USD_B, JPY}
    # Each connected account's destination charges: the platform's transfers to it.
    transfers = [r for r in server.requests if r.path == "/v1/transfers"]
    assert sorted((r.account, r.query["destination"]) for r in transfers) == [
        (None, USD_A),
        (None, USD_B),
        (None, JPY),
    ]


def test_history_lists_every_account_and_reads_one(platform, instance):
    _, root = platform
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    job = defs.resolve_job_def(DAILY_JOB)
    for account in (USD_A, USD_B):
        assert job.execute_in_process(instance=instance, partition_key=f"{account}|{DAY}").success
    store = ReportStore(f"duckdb:///{root / 'recon.duckdb'}")
    every = store.for_account(None).history(DAY, DAY)
    assert sorted((h["account"], h["status"]) for h in every) == [
        (USD_A, "success"),
        (USD_B, "discrepancy_found"),
    ]
    assert [h["account"] for h in store.for_account(USD_B).history(DAY, DAY)] == [USD_B]


def test_an_account_the_sensor_did_not_add_is_no_partition(platform, instance):
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    job = defs.resolve_job_def(DAILY_JOB)
    with pytest.raises(dg.DagsterUnknownPartitionError, match="acct_unknown"):
        job.execute_in_process(instance=instance, partition_key=f"acct_unknown|{DAY}")


def test_rerunning_an_account_day_adds_a_version_of_that_account_only(platform, instance):
    _, root = platform
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    job = defs.resolve_job_def(DAILY_JOB)
    for account in (USD_A, USD_B, USD_A):
        job.execute_in_process(instance=instance, partition_key=f"{account}|{DAY}")
    store = ReportStore(f"duckdb:///{root / 'recon.duckdb'}")
    assert [v["version"] for v in store.for_account(USD_A).versions(DAY)] == [2, 1]
    assert [v["version"] for v in store.for_account(USD_B).versions(DAY)] == [1]


def test_many_accounts_without_the_account_column_is_refused(platform, monkeypatch):
    monkeypatch.delenv("RECON_ACCOUNT_COLUMN")
    with pytest.raises(ConfigError, match="RECON_ACCOUNT_COLUMN"):
        Settings.from_env()


def test_the_check_key_is_the_same_for_every_account(platform):
    defs = build_defs(Settings.from_env())
    assert REPORT_CHECK in defs.resolve_asset_graph().asset_check_keys


def test_cli_reconciles_every_account_with_a_table_and_totals(platform):
    code, out = cli_json("reconcile", "--start", DAY.isoformat())
    assert (code, out["status"]) == (1, "discrepancy_found")
    by_account = {a["account"]: a for a in out["accounts"]}
    assert {a: r["missing_in_database"] for a, r in by_account.items()} == {
        PLATFORM: [],
        USD_A: [],
        USD_B: ["ch_b2"],
        JPY: [],
    }
    assert out["totals"] == [
        {
            "currency": "JPY",
            "stripe_total": "5000",
            "database_total": "5000",
            "discrepancy": "0",
            "gross_discrepancy": "0",
            "accounts": 1,
        },
        {
            "currency": "USD",
            "stripe_total": "191.99",
            "database_total": "184.99",
            "discrepancy": "7.00",
            "gross_discrepancy": "7.00",
            "accounts": 3,
        },
    ]


def test_cli_account_flag_reconciles_and_lists_that_account_only(platform):
    code, out = cli_json("reconcile", "--start", DAY.isoformat(), "--account", USD_B)
    assert (code, out["account"], out["missing_in_database"]) == (1, USD_B, ["ch_b2"])
    code, out = cli_json("reconcile", "--start", DAY.isoformat(), "--account", USD_A)
    assert (code, out["account"], out["status"]) == (0, USD_A, "success")
    code, history = cli_json("history", "--account", USD_B)
    assert [(r["account"], r["status"]) for r in history["reports"]] == [
        (USD_B, "discrepancy_found")
    ]
    code, every = cli_json("history")
    assert sorted(r["account"] for r in every["reports"]) == [USD_A, USD_B]


def test_cli_refuses_an_account_the_setting_does_not_name(platform, monkeypatch):
    monkeypatch.setenv("RECON_STRIPE_ACCOUNTS", f"{USD_A},{JPY}")
    code, out = cli_json("reconcile", "--start", DAY.isoformat(), "--account", USD_B)
    assert code == 2 and "RECON_STRIPE_ACCOUNTS" in out["error"] and USD_B in out["error"]


def test_a_connected_accounts_payout_missing_in_the_bank_is_that_accounts_alone(platform, instance):
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    job = defs.resolve_job_def(PAYOUTS_JOB)
    checks = {}
    for account in (USD_A, USD_B, JPY):
        result = job.execute_in_process(instance=instance, partition_key=f"{account}|{ARRIVAL}")
        assert result.success
        checks.update({e.partition: e for e in result.get_asset_check_evaluations()})
    _, root = platform
    store = ReportStore(f"duckdb:///{root / 'recon.duckdb'}")
    problems = {
        account: {
            p.id: list(p.problems)
            for p in PayoutStore(store.for_account(account)).latest(ARRIVAL).payouts
        }
        for account in (USD_A, USD_B, JPY)
    }
    assert problems == {
        USD_A: {"po_usa": []},
        USD_B: {"po_usb": ["charges_missing_in_database", "missing_in_bank"]},
        JPY: {"po_jpy": []},
    }
    assert [p for p, e in checks.items() if not e.passed] == [f"{USD_B}|{ARRIVAL}"]


def test_cli_payouts_per_account(platform):
    code, out = cli_json("payouts", "--start", ARRIVAL.isoformat(), "--account", USD_B)
    assert (code, out["account"]) == (1, USD_B)
    assert [(p["id"], p["problems"]) for p in out["payouts"]] == [
        ("po_usb", ["charges_missing_in_database", "missing_in_bank"])
    ]
    code, every = cli_json("payouts", "--start", ARRIVAL.isoformat())
    assert code == 1
    assert {a["account"]: [p["id"] for p in a["payouts"]] for a in every["accounts"]} == {
        PLATFORM: [],
        USD_A: ["po_usa"],
        USD_B: ["po_usb"],
        JPY: ["po_jpy"],
    }
    assert all(not a["deposits_without_payout"] for a in every["accounts"])


def test_alerts_name_the_account_and_page_once_per_account_and_day(platform, instance):
    _, root = platform
    with duckdb.connect(str(root / "app.duckdb")) as con:  # the yen sale was never recorded
        con.execute("delete from payments where stripe_charge_id = 'ch_j1'")
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    job = defs.resolve_job_def(DAILY_JOB)
    for account in (USD_A, USD_B, JPY):
        job.execute_in_process(instance=instance, partition_key=f"{account}|{DAY}")
    slack_sensor, pagerduty_sensor = build_alert_sensors(60, None)
    slack_rx, pd_rx = slack_receiver(), pagerduty_receiver()
    try:
        s_cursor = p_cursor = None
        for _ in range(2):  # a second tick sends nothing again
            s_cursor = tick(slack_sensor, instance, s_cursor, slack_alerts=slack_res(slack_rx))
            p_cursor = tick(pagerduty_sensor, instance, p_cursor, pagerduty_alerts=pd_res(pd_rx))
        messages = {
            {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}["Account"]: body
            for body in slack_rx.bodies
        }
        assert sorted(messages) == [USD_B, JPY] and len(slack_rx.bodies) == 2
        # (Slack's text has a zero-width space after `_`, so no name turns italic.)
        assert f"{DAY} ({JPY})" in messages[JPY]["text"].replace("\u200b", "")
        assert sorted(e["dedup_key"] for e in pd_rx.bodies) == [
            f"billing-reconciliation-{USD_B}-{DAY}",
            f"billing-reconciliation-{JPY}-{DAY}",
        ]
        jpy = next(e for e in pd_rx.bodies if JPY in e["dedup_key"])
        assert jpy["payload"]["custom_details"]["account"] == JPY
        assert jpy["payload"]["custom_details"]["stripe_total"] == "5000"  # yen, whole
    finally:
        slack_rx.close()
        pd_rx.close()


def test_cli_closes_each_accounts_balance_on_its_own(platform):
    code, out = cli_json("close", "--month", "2024-07", "--account", JPY)
    assert (code, out["account"], out["status"]) == (0, JPY, "tied_out")
    assert [c["currency"] for c in out["currencies"]] == ["JPY"]
    code, every = cli_json("close", "--month", "2024-07", "--lock", "--actor", "controller")
    assert (code, every["status"]) == (0, "tied_out")
    assert {a["account"]: [c["currency"] for c in a["currencies"]] for a in every["accounts"]} == {
        PLATFORM: ["USD"],  # the destination charge, its transfer and the application fee
        USD_A: ["USD"],
        USD_B: ["USD"],
        JPY: ["JPY"],
    }
    # Each account's month is locked on its own: B can be re-opened alone.
    code, reopened = cli_json(
        "close", "--month", "2024-07", "--account", USD_B, "--unlock", "--reason", "late refund"
    )
    assert (code, reopened["locked"]) == (0, False)
    code, again = cli_json("close", "--month", "2024-07", "--account", USD_A, "--lock")
    assert (code, again["status"], again["error"]) == (1, "lock_refused", again["error"])
    assert USD_A in again["error"]


def test_each_accounts_balance_rolls_forward_and_closes_in_dagster(platform, instance):
    _, root = platform
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    balance_job = defs.resolve_job_def(BALANCE_JOB)
    ties = {}
    for account in (USD_A, JPY):
        for day in (DAY, ARRIVAL):
            result = balance_job.execute_in_process(
                instance=instance, partition_key=f"{account}|{day}"
            )
            assert result.success
            ties.update({e.partition: e for e in result.get_asset_check_evaluations()})
    assert all(e.passed for e in ties.values()) and len(ties) == 4
    closing = ties[f"{JPY}|{ARRIVAL}"].metadata["closing"].value
    assert closing == {"JPY": 0}  # 5,000 yen sold, 150 in fees, 4,850 paid out
    close_job = defs.resolve_job_def(MONTH_CLOSE_JOB)
    result = close_job.execute_in_process(instance=instance, partition_key=f"{JPY}|2024-07-01")
    assert result.success
    [tied] = result.get_asset_check_evaluations()
    assert tied.passed
    store = ReportStore(f"duckdb:///{root / 'recon.duckdb'}")
    assert [c["status"] for c in CloseStore(store.for_account(JPY)).closes("2024-07")] == [
        "tied_out"
    ]
    assert CloseStore(store).closes("2024-07") == []  # nothing landed on the one account


def test_auto_sync_writes_the_missing_payment_with_its_account(platform, instance, monkeypatch):
    _, root = platform
    monkeypatch.setenv("RECON_AUTO_SYNC", "true")
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    job = defs.resolve_job_def(DAILY_JOB)
    assert job.execute_in_process(instance=instance, partition_key=f"{USD_B}|{DAY}").success
    with duckdb.connect(str(root / "app.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select stripe_account, amount from payments where stripe_charge_id = 'ch_b2'"
        ).fetchall()
    assert rows == [(USD_B, 700)]
    store = ReportStore(f"duckdb:///{root / 'recon.duckdb'}")
    assert store.for_account(USD_B).latest(DAY).missing_in_database == []


def test_a_late_refund_on_one_account_reopens_that_accounts_day_only(platform, instance):
    server, _ = platform
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    job = defs.resolve_job_def(DAILY_JOB)
    for account in (USD_A, USD_B):
        assert job.execute_in_process(instance=instance, partition_key=f"{account}|{DAY}").success
    tick = late_changes_tick(defs, instance)

    first = tick(None)  # every account starts from now
    assert not first.run_requests and first.cursor
    server.connected_account(USD_B).update_charge("ch_b1", amount_refunded=500)
    second = tick(first.cursor)
    assert [r.partition_key for r in second.run_requests or []] == [f"{USD_B}|{DAY}"]
    [request] = second.run_requests or []
    assert request.tags["recon/late_event_types"] == "charge.refunded"
    third = tick(second.cursor)  # the event is read once
    assert not third.run_requests


def test_a_late_refund_of_a_destination_charge_reopens_its_destination_accounts_day(
    platform, instance
):
    """The refund is the platform's event (the charge is the platform's), but the sale is A's:
    A's day is re-opened, not the platform's."""
    server, _ = platform
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    job = defs.resolve_job_def(DAILY_JOB)
    for account in (PLATFORM, USD_A):
        assert job.execute_in_process(instance=instance, partition_key=f"{account}|{DAY}").success
    tick = late_changes_tick(defs, instance)

    first = tick(None)
    server.update_charge("ch_dest", amount_refunded=1_000)
    second = tick(first.cursor)
    assert [r.partition_key for r in second.run_requests or []] == [f"{USD_A}|{DAY}"]
    # A dispute's event names only the charge: the platform looks up whose sale it is.
    server.open_dispute(
        make_dispute("dp_dest", "ch_dest", 3_000, created=int(at(DAY, 13).timestamp()))
    )
    third = tick(second.cursor)
    assert [r.partition_key for r in third.run_requests or []] == [f"{USD_A}|{DAY}"]
    assert third.run_requests[0].tags["recon/late_event_types"] == "charge.dispute.created"


def test_cli_sync_writes_the_account_of_the_synced_payment(platform):
    _, root = platform
    code, out = cli_json("sync", "--start", DAY.isoformat(), "--account", USD_B)
    assert (code, out["synced"]) == (0, 1)
    with duckdb.connect(str(root / "app.duckdb"), read_only=True) as con:
        assert con.execute(
            "select stripe_account from payments where stripe_charge_id = 'ch_b2'"
        ).fetchall() == [(USD_B,)]
    code, out = cli_json("sync", "--start", DAY.isoformat())
    assert code == 2 and "--account" in out["error"]


def test_a_backfill_chunk_of_one_accounts_days_is_one_run(platform, instance):
    _, root = platform
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    job = defs.resolve_job_def(DAILY_JOB)
    first, last = f"{USD_B}|2024-07-09", f"{USD_B}|{DAY}"
    result = job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )
    assert result.success
    checks = {e.partition: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {first: True, last: False}  # the 9th had no sales: nothing to miss
    store = ReportStore(f"duckdb:///{root / 'recon.duckdb'}").for_account(USD_B)
    assert store.latest(date(2024, 7, 9)).stripe_count == 0
    assert store.latest(DAY).missing_in_database == ["ch_b2"]


def test_a_backfill_chunk_of_one_day_of_every_account_reconciles_each(platform, instance):
    """A backfill of more accounts than days is run by Dagster as one run per day over the
    accounts: each account's day is still its own report, check and partition."""
    _, root = platform
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    result = defs.resolve_job_def(DAILY_JOB).execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": f"{USD_A}|{DAY}",
            "dagster/asset_partition_range_end": f"{JPY}|{DAY}",
        },
    )
    assert result.success
    checks = {e.partition: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {f"{USD_A}|{DAY}": True, f"{USD_B}|{DAY}": False, f"{JPY}|{DAY}": True}
    materialized = {
        e.partition
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("reconciliation_report")
    }
    assert materialized == set(checks)
    store = ReportStore(f"duckdb:///{root / 'recon.duckdb'}")
    assert store.for_account(USD_B).latest(DAY).missing_in_database == ["ch_b2"]
    assert store.for_account(JPY).latest(DAY).currency == "JPY"


def test_the_schedules_ask_for_every_accounts_day(platform, instance):
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    at_two = datetime(2024, 7, 11, 2, 0, tzinfo=UTC)
    repository = defs.get_repository_def()
    daily = defs.resolve_schedule_def("daily_reconciliation_schedule")
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at_two, repository_def=repository
    )
    requests = daily.evaluate_tick(context).run_requests or []
    assert sorted(r.partition_key for r in requests) == [
        f"{a}|{DAY}" for a in sorted((PLATFORM, USD_A, USD_B, JPY))
    ]
    payouts = defs.resolve_schedule_def("payouts_daily")
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=at_two, repository_def=repository
    )
    keys = {r.partition_key for r in payouts.evaluate_tick(context).run_requests or []}
    assert {k.split("|")[0] for k in keys} == {PLATFORM, USD_A, USD_B, JPY}
    assert f"{JPY}|{DAY}" in keys


def test_locking_every_account_locks_those_that_tie_out_and_names_the_one_that_does_not(
    platform,
):
    server, _ = platform
    # Funds Stripe holds for B that no balance transaction of B moves: B's month cannot tie out.
    server.connected_account(USD_B).connect_reserved = {"usd": 1_234}
    code, out = cli_json("close", "--month", "2024-07", "--lock", "--actor", "controller")
    assert (code, out["status"]) == (1, "lock_refused")
    by_account = {a["account"]: a for a in out["accounts"]}
    assert (by_account[USD_A]["locked"], by_account[JPY]["locked"]) == (True, True)
    assert by_account[USD_B]["status"] == "lock_refused"
    assert USD_B in by_account[USD_B]["error"] and "not tied out" in by_account[USD_B]["error"]
