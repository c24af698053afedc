"""Property: applying any sequence of late changes and re-reconciling only the days their events
name gives the same reports as reconciling every day again from scratch."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

import duckdb
from hypothesis import given, settings, strategies as st

from recon_dagster import Settings, create_billing_reconciliation_service
from recon_dagster.sources import stripe_client, stripe_events
from recon_dagster.testing.stripe_server import StripeServer, make_charge, make_dispute
from recon_dagster_tests.support.scenario import API_KEY, at

DAYS = [date(2024, 6, 3) + timedelta(days=i) for i in range(3)]
CHARGES = 9  # three a day; every third one an authorization captured later


def world(root: Path) -> tuple[StripeServer, dict[str, str]]:
    charges = []
    for i in range(CHARGES):
        uncaptured = i % 3 == 2
        charge = make_charge(
            f"ch_{i}", 1_000 * (i + 1), created=int(at(DAYS[i // 3], 9 + i % 3).timestamp())
        )
        if uncaptured:
            charge.update(captured=False, amount_captured=0)
        charges.append(charge)
    db = root / "app.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table payments (stripe_charge_id varchar, amount bigint, currency varchar, "
            "status varchar, "
            "created_at timestamptz, amount_refunded bigint)"
        )
        con.executemany(
            "insert into payments values (?, ?, 'USD', 'succeeded', ?, 0)",
            [
                (
                    c["id"],
                    c["amount"],
                    at(DAYS[int(c["id"][3:]) // 3], 9 + int(c["id"][3:]) % 3, 0, 2),
                )
                for c in charges
            ],
        )
    server = StripeServer(charges, api_key=API_KEY).start()
    env = {
        "STRIPE_API_KEY": API_KEY,
        "STRIPE_API_BASE": server.url,
        "RECON_DATABASE_URL": f"duckdb:///{db}",
        "RECON_PAYMENTS_REFUNDED_COLUMN": "amount_refunded",
    }
    return server, env


def apply(server: StripeServer, index: int, change: str) -> None:
    cid = f"ch_{index}"
    amount = 1_000 * (index + 1)
    if change == "refund":
        server.update_charge(cid, amount_refunded=amount // 2)
    elif change == "capture" and index % 3 == 2:
        server.update_charge(cid, captured=True, amount_captured=amount)
    elif change == "dispute_lost":
        server.open_dispute(
            make_dispute(
                f"dp_{index}",
                cid,
                amount,
                "usd",
                status="lost",
                created=int(at(DAYS[-1], 20).timestamp()),
            )
        )
    else:
        server.update_charge(cid, description="edited")  # a charge.updated that changes no money


@settings(max_examples=6, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, CHARGES - 1),
            st.sampled_from(["refund", "capture", "dispute_lost", "other"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_reopening_the_days_events_name_equals_reconciling_every_day_again(changes):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server, env = world(root)
        try:
            kept = create_billing_reconciliation_service(
                Settings.from_env(
                    {**env, "RECON_REPORT_STORE_URL": f"duckdb:///{root}/kept.duckdb"},
                    base_dir=root,
                )
            )
            for day in DAYS:
                kept.reconcile(day)
            cursor = stripe_events.Cursor(0)
            for index, change in changes:
                apply(server, index, change)
            client = stripe_client.make_client(API_KEY, api_base=server.url)
            for day in stripe_events.days_of(
                client, stripe_events.read_changes(client, cursor), "UTC"
            ):
                kept.reconcile(day)  # what the sensor's runs do
            fresh = create_billing_reconciliation_service(
                Settings.from_env(
                    {**env, "RECON_REPORT_STORE_URL": f"duckdb:///{root}/fresh.duckdb"},
                    base_dir=root,
                )
            )
            for day in DAYS:
                assert (
                    kept.store().latest(day).to_json_dict() == fresh.reconcile(day).to_json_dict()
                ), day
        finally:
            server.stop()
