"""Connect money on both sides of a platform: destination charges (one `on_behalf_of`), direct
charges with application fees, a refund that reverses its transfer, and a separate transfer.
Each sale is reconciled once, on the account it was made for; each account's payout is itemized
under the ids the payments table holds; each side's balance classifies its own movements."""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
import pytest

from recon_dagster.definitions import build_defs
from recon_dagster.defs.shared import DAILY_JOB, PAYOUTS_JOB
from recon_dagster.settings import Settings
from recon_dagster.stores.payout_store import PayoutStore
from recon_dagster.stores.report_store import ReportStore
from recon_dagster.testing.connect_money import ConnectSale, destination_charge, direct_charge
from recon_dagster.testing.stripe_server import (
    StripeServer,
    make_balance_transaction,
    make_charge,
    make_payout,
    payout_transactions,
)
from recon_dagster_tests.support.accounts import add_accounts, cli_json
from recon_dagster_tests.support.scenario import API_KEY, at

DAY = date(2024, 7, 10)
ARRIVAL = date(2024, 7, 12)
SELLER_A, SELLER_B = "acct_1Sella", "acct_2Sellb"
PLATFORM = "platform"


def separate_transfer(amount: int, destination: str, created: int) -> ConnectSale:
    """The platform paying an account from its own balance (no charge behind it): the account
    receives a payment that is no sale of its own."""
    return ConnectSale(
        transfers=[
            {
                "id": "tr_bonus",
                "object": "transfer",
                "amount": amount,
                "currency": "usd",
                "created": created,
                "destination": destination,
                "destination_payment": "py_bonus",
                "source_transaction": None,
            }
        ],
        platform_transactions=[
            make_balance_transaction(
                "txn_tr_bonus", -amount, type="transfer", source="tr_bonus", created=created
            )
        ],
        account_charges=[
            make_charge("py_bonus", amount, created=created, source_transfer="tr_bonus")
        ],
        account_transactions=[
            make_balance_transaction(
                "txn_py_bonus", amount, type="payment", source="py_bonus", created=created
            )
        ],
    )


def pay_out(payout_id: str, sales: list[ConnectSale], *, side: str) -> tuple[dict, list[dict]]:
    """A payout arriving on ARRIVAL of every balance transaction of `sales` on one side
    (`platform` or `account`), and those transactions with its own."""
    field = f"{side}_transactions"
    paid = [dict(t, _payout=payout_id) for sale in sales for t in getattr(sale, field)]
    payout = make_payout(
        payout_id, sum(t["net"] for t in paid), arrival_date=int(at(ARRIVAL, 0).timestamp())
    )
    return payout, [*paid, payout_transactions(payout)]


@pytest.fixture
def marketplace(tmp_path, monkeypatch):
    """A platform with two sellers. A: a direct charge (application fee, part of it refunded),
    a destination charge on its behalf, and a separate transfer from the platform. B: a
    destination charge, partly refunded with its transfer reversed, that the application never
    recorded. The platform: a sale of its own. Every payout reached the bank."""
    server = StripeServer([], api_key=API_KEY).start()
    noon = int(at(DAY, 12).timestamp())
    for account in (SELLER_A, SELLER_B):
        server.add_connected_account(account, default_currency="usd")
    sales = {
        SELLER_A: [
            direct_charge("ch_a1", 1_000, created=noon, application_fee=100, fee_refunded=30),
            destination_charge(
                "ch_d1", 4_000, SELLER_A, created=noon, application_fee=400, on_behalf_of=True
            ),
            separate_transfer(500, SELLER_A, noon),
        ],
        SELLER_B: [
            destination_charge(
                "ch_d2", 3_000, SELLER_B, created=noon, application_fee=300, refunded=1_000
            ),
        ],
    }
    own = ConnectSale(
        platform_charges=[make_charge("ch_p1", 2_500, created=noon)],
        platform_transactions=[
            make_balance_transaction("txn_p1", 2_500, source="ch_p1", created=noon)
        ],
    )
    payouts = {}
    for account, account_sales in sales.items():
        for sale in account_sales:
            server.add_sale(sale, account)
        payout, paid = pay_out(f"po_{account[-5:].lower()}", account_sales, side="account")
        server.connected_account(account).add_payouts([payout])
        server.connected_account(account).add_balance_transactions(paid)
        payouts[account] = payout
    server.add_charges(own.platform_charges)
    every = [own, *(sale for account_sales in sales.values() for sale in account_sales)]
    payout, paid = pay_out("po_platform", every, side="platform")
    server.add_payouts([payout])
    server.add_balance_transactions(paid)
    payouts[PLATFORM] = payout

    db = tmp_path / "app.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table payments (stripe_charge_id varchar, amount bigint, currency varchar, "
            "status varchar, created_at timestamptz, seller varchar)"
        )
        # Each sale under the seller it was made for (the platform's own with none).
        for cid, amount, seller in (
            ("ch_a1", 1_000, SELLER_A),
            ("ch_d1", 4_000, SELLER_A),
            ("ch_p1", 2_500, None),
        ):
            con.execute(
                "insert into payments values (?, ?, 'USD', 'succeeded', ?, ?)",
                [cid, amount, at(DAY, 12, 0, 2), seller],
            )
        con.execute(
            "create table bank_lines (id varchar, booked_on date, amount bigint, "
            "currency varchar, seller varchar)"
        )
        for n, (account, payout) in enumerate(payouts.items()):
            con.execute(
                "insert into bank_lines values (?, ?, ?, 'USD', ?)",
                [f"L{n}", ARRIVAL, payout["amount"], None if account == PLATFORM else account],
            )
    env = {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_STRIPE_CONNECT": "1",
        "RECON_ACCOUNT_COLUMN": "seller",
        "RECON_DATABASE_URL": f"duckdb:///{db}",
        "RECON_REPORT_STORE_URL": f"duckdb:///{tmp_path / 'recon.duckdb'}",
        "RECON_START_DATE": "2024-07-01",
        "RECON_BANK_TABLE": "bank_lines",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    yield server, tmp_path, payouts
    server.stop()


def run_each(defs: dg.Definitions, instance, job: str, day: date) -> dict[str, bool]:
    """`job` for each account's `day`; each account's check verdict."""
    verdicts = {}
    for account in (PLATFORM, SELLER_A, SELLER_B):
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=f"{account}|{day}"
        )
        assert result.success
        verdicts[account] = all(e.passed for e in result.get_asset_check_evaluations())
    return verdicts


def test_each_sale_is_reconciled_once_on_the_account_it_was_made_for(marketplace, instance):
    _, root, _ = marketplace
    defs = build_defs(Settings.from_env())
    assert add_accounts(defs, instance) == [PLATFORM, SELLER_A, SELLER_B]
    verdicts = run_each(defs, instance, DAILY_JOB, DAY)
    assert verdicts == {PLATFORM: True, SELLER_A: True, SELLER_B: False}
    store = ReportStore(f"duckdb:///{root / 'recon.duckdb'}")
    reports = {a: store.for_account(a).latest(DAY) for a in (PLATFORM, SELLER_A, SELLER_B)}
    assert {a: r.missing_in_database for a, r in reports.items()} == {
        PLATFORM: [],  # B's destination charge is not the platform's sale
        SELLER_A: [],  # neither the payment of A's destination charge nor the transfer
        SELLER_B: ["ch_d2"],
    }
    assert {a: (r.stripe_total, r.database_total) for a, r in reports.items()} == {
        PLATFORM: (2_500, 2_500),
        SELLER_A: (5_000, 5_000),  # the direct charge and the destination charge, gross
        SELLER_B: (2_000, 0),  # 3,000 less the 1,000 refunded
    }
    assert {a: r.missing_in_stripe for a, r in reports.items()} == {
        PLATFORM: [],
        SELLER_A: [],
        SELLER_B: [],
    }


def test_the_destination_charges_are_read_from_the_platforms_transfers_to_each_account(
    marketplace, instance
):
    server, _, _ = marketplace
    code, out = cli_json("reconcile", "--start", DAY.isoformat(), "--account", SELLER_A)
    assert (code, out["status"]) == (0, "success")
    transfers = [r for r in server.requests if r.path == "/v1/transfers"]
    assert [(r.account, r.query["destination"]) for r in transfers] == [(None, SELLER_A)]
    assert transfers[0].query["expand[0]"] == "data.source_transaction"


def test_each_accounts_payout_is_itemized_under_the_ids_the_table_holds(marketplace, instance):
    _, root, payouts = marketplace
    defs = build_defs(Settings.from_env())
    add_accounts(defs, instance)
    verdicts = run_each(defs, instance, PAYOUTS_JOB, ARRIVAL)
    assert verdicts == {PLATFORM: True, SELLER_A: True, SELLER_B: False}
    store = ReportStore(f"duckdb:///{root / 'recon.duckdb'}")
    lines = {
        a: {p.id: p for p in PayoutStore(store.for_account(a)).latest(ARRIVAL).payouts}
        for a in (PLATFORM, SELLER_A, SELLER_B)
    }
    # B's payout paid out the payment of its destination charge: looked up as ch_d2, not py_d2.
    b = lines[SELLER_B]["po_sellb"]
    assert (list(b.problems), list(b.charges_missing_in_database)) == (
        ["charges_missing_in_database"],
        ["ch_d2"],
    )
    a = lines[SELLER_A]["po_sella"]
    assert (list(a.problems), a.amount) == ([], payouts[SELLER_A]["amount"])
    assert payouts[SELLER_A]["amount"] == 3_600 + 900 + 500  # less the fee A paid on each sale
    platform = lines[PLATFORM]["po_platform"]
    assert list(platform.problems) == []  # B's missing sale is B's finding, not the platform's


def test_each_side_classifies_its_own_connect_money(marketplace):
    code, platform = cli_json("close", "--month", "2024-07", "--account", PLATFORM)
    assert (code, platform["status"]) == (0, "tied_out")
    [usd] = platform["currencies"]
    assert {k: v for k, v in usd["activity"].items() if v != "0.00"} == {
        "charge": "95.00",  # its own sale and both destination charges, gross
        "refund": "-10.00",
        "transfer": "-75.00",  # both destination charges' funds and the separate transfer
        "transfer_reversal": "10.00",
        "platform_earning": "8.00",  # 400 + 300 on the destination charges, 100 on the direct
        "platform_earning_refund": "-1.30",  # 100 with B's refund, 30 given back to A
    }
    code, seller = cli_json("close", "--month", "2024-07", "--account", SELLER_A)
    assert (code, seller["status"]) == (0, "tied_out")
    [usd] = seller["currencies"]
    assert {k: v for k, v in usd["activity"].items() if v != "0.00"} == {
        "charge": "55.00",  # the direct charge, the destination payment and the transfer's
        "fee": "-5.00",  # the application fees it paid
    }
