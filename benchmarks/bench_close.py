"""Time a month close on the core, and count what a month of balance transactions costs in
requests through the API path.

    python benchmarks/bench_close.py [--per-day 100000] [--days 30] [--api-transactions 20000]
        [--json] [--seed 7]

Core: a month of `--days` days at `--per-day` charges a day in USD, EUR, JPY and KWD, each with
its fee, plus refunds (8% of charges), disputes and their reversals, standalone fees, adjustments,
reserves, transfers and a payout a day per currency: about 3.5M balance transactions for the
defaults, built in Polars in `BALANCE_TRANSACTIONS_SCHEMA` before the clock starts. Then
`core.month_close.close` (activity by category, the roll-forward, pending funds, the journal
with the shipped GL mapping), best of 3:

- `seconds`, `peak_mib` (peak RSS growth during the call), `journal_balanced`;
- `seconds_vs_target` and `peak_vs_target`: against the issue's 5 s and 1.5 GiB (< 1 is met).

API path: `--api-transactions` balance transactions on one day, served by the local Stripe server
(in a child process) at Stripe's live limits (100 requests/s in all, 25 per endpoint), read with
`fetch_balance_transactions` through the paced client: requests used, the requests/s reached on
`GET /v1/balance_transactions` against its 25/s ceiling, and what a month of the core's
transactions would take at that ceiling (one request per 100 transactions). Exit 0 whatever the
figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reconcile import PeakRss  # the benchmarks' shared RSS sampler

from recon_dagster.close import gl_mapping
from recon_dagster.core.balance_frames import BALANCE_TRANSACTIONS_SCHEMA
from recon_dagster.core.journal import unbalanced
from recon_dagster.core.month_close import close
from recon_dagster.days import day_window
from recon_dagster.sources.stripe_balance import fetch_balance_transactions
from recon_dagster.sources.stripe_client import make_client
from recon_dagster.testing.stripe_objects import make_balance_transaction
from recon_dagster.testing.stripe_server import StripeServer

FIRST = date(2026, 11, 1)
CURRENCIES = ["USD", "EUR", "JPY", "KWD"]
LIVE_KEY = "sk_live_bench_close"
# (reporting category, type, share of the day's charges, sign of the amount)
EXTRA = [
    ("refund", "refund", 0.08, -1),
    ("dispute", "adjustment", 0.004, -1),
    ("dispute_reversal", "adjustment", 0.002, 1),
    ("fee", "stripe_fee", 0.01, -1),
    ("other_adjustment", "adjustment", 0.002, 1),
    ("risk_reserved_funds", "reserve_transaction", 0.001, -1),
    ("transfer", "transfer", 0.02, -1),
    ("partial_capture_reversal", "charge", 0.005, -1),
]


def month_of_transactions(days: int, per_day: int, seed: int) -> pl.DataFrame:
    """The core's input: `days` days of charges and everything else, in the schema."""
    start = datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC)
    parts = []
    n = days * per_day
    offset = 0

    def block(count: int, category: str, kind: str, sign: int, with_fee: bool) -> pl.DataFrame:
        nonlocal offset
        i = pl.int_range(offset, offset + count, dtype=pl.Int64, eager=True)
        offset += count
        h = i.hash(seed)
        amount = (h % 50_000 + 100).cast(pl.Int64) * sign
        fee = (
            (amount.abs() * 29 // 1000 + 30) if with_fee else pl.zeros(count, pl.Int64, eager=True)
        )
        seconds = (h // 7 % (days * 86_400)).cast(pl.Int64)
        created = pl.Series([start]).dt.cast_time_unit("us")[0]
        frame = pl.DataFrame({"i": i, "amount": amount, "fee": fee, "seconds": seconds})
        return frame.select(
            id=pl.format("txn_{}", "i"),
            created=pl.lit(created) + pl.duration(seconds=pl.col("seconds")),
            available_on=pl.lit(created) + pl.duration(seconds=pl.col("seconds") + 2 * 86_400),
            currency=pl.lit(pl.Series(CURRENCIES)).get(pl.col("i") % len(CURRENCIES)),
            amount="amount",
            fee="fee",
            net=pl.col("amount") - pl.col("fee"),
            type=pl.lit(kind),
            reporting_category=pl.lit(category),
            source=pl.format("src_{}", "i"),
            payout=pl.lit(None, pl.String()),
            invalid_column=pl.lit(None, pl.String()),
            invalid_reason=pl.lit(None, pl.String()),
        )

    parts.append(block(n, "charge", "charge", 1, True))
    for category, kind, share, sign in EXTRA:
        parts.append(block(int(n * share), category, kind, sign, False))
    parts.append(block(days * len(CURRENCIES), "payout", "payout", -1, False))
    return pl.concat(parts).cast(BALANCE_TRANSACTIONS_SCHEMA).sort("created")


def core_figures(days: int, per_day: int, seed: int) -> dict:
    transactions = month_of_transactions(days, per_day, seed)
    month_days = [FIRST + timedelta(days=i) for i in range(days)]
    window = day_window(month_days[0], month_days[-1], "UTC")
    mapping = gl_mapping.load()
    runs, peak, result = [], 0.0, None
    for _ in range(3):
        gc.collect()
        with PeakRss() as rss:
            began = time.perf_counter()
            result = close(
                "2026-11", month_days, "UTC", window, transactions, {}, None, [], mapping
            )
            runs.append(time.perf_counter() - began)
        peak = max(peak, rss.mib)
    assert result is not None
    seconds = min(runs)
    return {
        "balance_transactions": transactions.height,
        "categories": transactions["reporting_category"].n_unique() + 1,  # + fee, from fees
        "seconds": round(seconds, 3),
        "runs": [round(r, 3) for r in runs],
        "peak_mib": round(peak, 1),
        "journal_lines": result.journal.height,
        "journal_balanced": unbalanced(result.journal).is_empty(),
        "seconds_vs_target": round(seconds / 5.0, 3),
        "peak_vs_target": round(peak / 1536.0, 3),
    }


def _serve(conn, count: int) -> None:
    """Child process: one day of `count` balance transactions at Stripe's live limits."""
    at = int(datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC).timestamp())
    ledger = [
        make_balance_transaction(f"txn_{i:08d}", 1_000 + i % 500, fee=59, created=at + i % 86_400)
        for i in range(count)
    ]
    server = StripeServer(
        api_key=LIVE_KEY, rate_limit=100, endpoint_rate_limit=25, balance_transactions=ledger
    ).start()
    conn.send(server.url)
    conn.recv()
    conn.send(
        (
            len(server.requests),
            [r.timestamp for r in server.requests if r.path == "/v1/balance_transactions"],
            server.count(429),
        )
    )
    server.stop()


def api_figures(count: int, month_transactions: int) -> dict:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(child, count))
    process.start()
    url = parent.recv()
    client = make_client(LIVE_KEY, api_base=url, requests_per_second=100)
    start, end = day_window(FIRST, FIRST, "UTC")
    began = time.perf_counter()
    frame = fetch_balance_transactions(client, start, end)
    seconds = time.perf_counter() - began
    parent.send("stop")
    requests, stamps, refused = parent.recv()
    process.join()
    span = (max(stamps) - min(stamps)) if len(stamps) > 1 else 0.0
    rate = (len(stamps) - 1) / span if span else 0.0
    floor = -(-month_transactions // 100) / 25
    return {
        "transactions": frame.height,
        "requests": requests,
        "requests_per_100_transactions": round(requests / max(frame.height / 100, 1), 3),
        "seconds": round(seconds, 2),
        "endpoint_requests_per_second": round(rate, 2),
        "endpoint_ceiling": 25,
        "fraction_of_ceiling": round(rate / 25, 3),
        "server_429": refused,
        "month_requests_at_least": -(-month_transactions // 100),
        "month_minutes_at_ceiling": round(floor / 60, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--per-day", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--api-transactions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    core = core_figures(args.days, args.per_day, args.seed)
    api = api_figures(args.api_transactions, core["balance_transactions"])
    figures = {"core": core, "api": api}
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
