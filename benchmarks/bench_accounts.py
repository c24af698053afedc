"""Many Stripe accounts under Stripe's limits, and one account's budget shared by concurrent runs.

    python benchmarks/bench_accounts.py [--json] [--accounts 200] [--days 7] [--per-day 100]
        [--latency 0.05] [--workers 16] [--concurrent-runs 4] [--run-charges 4000]

The local Stripe-compatible server runs in its own process (its own GIL) with `latency` seconds
per request and Stripe's limits enforced per account: 25 requests/s per endpoint and 100/s in all
(live mode), each connected account its own (`Stripe-Account`), 429 + `Retry-After: 1` beyond.
The client uses a fake live-mode platform key.

- `accounts`: a platform with `--accounts` connected accounts, each with `--per-day` charges a day
  over `--days` days. The accounts are listed (`GET /v1/accounts`), then each account's days are
  read as one run of the daily assets reads them (`StripeApi.fetch_charges` over the range, with
  the disputes and its destination charges: the platform's `GET /v1/transfers?destination=`, on
  the platform's own budget), `--workers` accounts at a time (as many runs as the deployment
  runs at once).
  `fraction_of_ceiling`: the requests/s reached over the ceiling of the accounts running at once
  (`workers` x 25/s on `GET /v1/charges`); `busiest_account_second`: the most requests one
  account's endpoint got in a rolling second (never above 25).
- `one_account`: `--concurrent-runs` processes (as many runs, each in its own process, as the
  daemon launches them) read one day each of the same connected account at once: first with the
  shared budget (`stripe_budget`, a SQLite file as beside a DuckDB store), then each pacing alone
  (`RECON_STRIPE_BUDGET_URL=off`, the behaviour before). `fraction_of_ceiling` is the account's
  `GET /v1/charges` requests/s over its 25/s ceiling.

`server_429` counts 429s over every request of a part (the client retries them; each costs a
second). Prints one JSON line with --json; otherwise a readable summary too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from bisect import bisect_left
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recon_dagster.settings.accounts import PLATFORM_ACCOUNT
from recon_dagster.sources.stripe_accounts import connected_accounts
from recon_dagster.sources.stripe_api import ConnectSide, StripeApi
from recon_dagster.sources.stripe_client import make_client
from recon_dagster.testing.stripe_server import StripeServer, make_charge

START = datetime(2024, 3, 1, tzinfo=UTC)
LIVE_KEY = "sk_live_recon_bench_accounts"  # fake, live-shaped; never printed
ENDPOINT_LIMIT = 25.0
CHARGES = "/v1/charges"


def charges_of(account: int, days: int, per_day: int) -> list[dict]:
    """`per_day` charges a day over `days` days, spread evenly through each day."""
    t0 = int(START.timestamp())
    return [
        make_charge(
            f"ch_{account:04d}_{d:02d}_{i:06d}",
            100 + (i * 37) % 50_000,
            created=t0 + d * 86_400 + (i * 86_400) // per_day,
        )
        for d in range(days)
        for i in range(per_day)
    ]


def _serve(conn, accounts: int, days: int, per_day: int, latency: float) -> None:
    """Child process: the platform and its accounts; answers `records`, `clear`, `stop`."""
    server = StripeServer(
        [],
        api_key=LIVE_KEY,
        latency=latency,
        rate_limit=100.0,
        endpoint_rate_limit=ENDPOINT_LIMIT,
    )
    for a in range(accounts):
        server.add_connected_account(f"acct_{a:04d}bench").add_charges(charges_of(a, days, per_day))
    server.start()
    conn.send(server.url)
    while True:
        command = conn.recv()
        if command == "records":
            conn.send([(r.path, r.status, r.timestamp, r.account) for r in server.requests])
        elif command == "clear":
            server.clear_requests()
            conn.send(None)
        else:
            server.stop()
            conn.send(None)
            return


def _ask(conn, command: str):
    conn.send(command)
    return conn.recv()


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def read_account(url: str, account: str, first: int, days: int, budget: str | None) -> int:
    """One run's read of `account`'s days `first`..`first + days - 1`: how many charges."""
    client = make_client(
        LIVE_KEY, api_base=url, account=account, stripe_account=account, budget_url=budget
    )
    # As the product reads a connected account: its destination charges from the platform's
    # transfers to it, on the platform's own budget.
    platform = make_client(LIVE_KEY, api_base=url, account=PLATFORM_ACCOUNT, budget_url=budget)
    start = START + timedelta(days=first)
    api = StripeApi(client, connect=ConnectSide(platform, destination=account))
    return api.fetch_charges(start, start + timedelta(days=days)).height


def _run_process(url: str, account: str, day: int, budget: str | None, out) -> None:
    """Child process: one run reading one day of `account`."""
    out.put(read_account(url, account, day, 1, budget))


def summary(records: list[tuple], seconds: float) -> dict:
    listings = [r for r in records if r[0] == CHARGES]
    by_account: dict[str | None, list[float]] = {}
    for _, _, at, account in listings:
        by_account.setdefault(account, []).append(at)
    return {
        "seconds": round(seconds, 2),
        "requests": len(records),
        "server_429": sum(1 for r in records if r[1] == 429),
        "server_429_share": round(sum(1 for r in records if r[1] == 429) / len(records), 4)
        if records
        else 0.0,
        "charges_requests": len(listings),
        "transfers_requests": sum(1 for r in records if r[0] == "/v1/transfers"),
        "busiest_account_second": max((busiest_second(t) for t in by_account.values()), default=0),
    }


def bench_accounts(url: str, conn, args, budget: str) -> dict:
    _ask(conn, "clear")
    began = time.perf_counter()
    platform = make_client(LIVE_KEY, api_base=url, budget_url=budget)
    accounts = connected_accounts(platform)
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        counts = list(pool.map(lambda a: read_account(url, a, 0, args.days, budget), accounts))
    seconds = time.perf_counter() - began
    out = summary(_ask(conn, "records"), seconds)
    ceiling = min(args.workers, len(accounts)) * ENDPOINT_LIMIT
    out |= {
        "accounts": len(accounts),
        "charges": sum(counts),
        "charges_expected": args.accounts * args.days * args.per_day,
        "requests_per_second": round(out["requests"] / seconds, 1),
        "fraction_of_ceiling": round(out["charges_requests"] / seconds / ceiling, 3),
    }
    return out


def bench_one_account(url: str, conn, args, budget: str | None) -> dict:
    _ask(conn, "clear")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    account = "acct_0000bench"
    runs = [
        ctx.Process(target=_run_process, args=(url, account, day, budget, queue))
        for day in range(args.concurrent_runs)
    ]
    for run in runs:
        run.start()
    counts = [queue.get(timeout=600) for _ in runs]
    for run in runs:
        run.join()
    records = [r for r in _ask(conn, "records") if r[3] == account]
    listings = sorted(r[2] for r in records if r[0] == CHARGES and r[1] == 200)
    span = (listings[-1] - listings[0]) if len(listings) > 1 else 1.0
    out = summary(records, span)
    out |= {
        "runs": len(runs),
        "charges": sum(counts),
        "charges_per_second_of_requests": round(len(listings) / span, 2),
        "fraction_of_ceiling": round(len(listings) / span / ENDPOINT_LIMIT, 3),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=16, help="accounts read at once")
    parser.add_argument("--concurrent-runs", type=int, default=4)
    parser.add_argument(
        "--run-charges", type=int, default=4000, help="charges in each concurrent run's day"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    result: dict = {"machine_cpus": mp.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench_accounts_") as tmp:
        budget = f"sqlite:///{Path(tmp) / 'stripe_budget.sqlite'}"
        parent, child = ctx.Pipe()
        server = ctx.Process(
            target=_serve, args=(child, args.accounts, args.days, args.per_day, args.latency)
        )
        server.start()
        url = parent.recv()
        try:
            result["accounts"] = bench_accounts(url, parent, args, budget)
        finally:
            _ask(parent, "stop")
            server.join()
        # One account with `concurrent_runs` busy days, for the shared budget.
        parent, child = ctx.Pipe()
        server = ctx.Process(
            target=_serve, args=(child, 1, args.concurrent_runs, args.run_charges, args.latency)
        )
        server.start()
        url = parent.recv()
        try:
            shared = f"sqlite:///{Path(tmp) / 'one_account_budget.sqlite'}"
            result["one_account_shared_budget"] = bench_one_account(url, parent, args, shared)
            result["one_account_each_alone"] = bench_one_account(url, parent, args, None)
        finally:
            _ask(parent, "stop")
            server.join()
    print(json.dumps(result))
    if not args.json:
        for part, figures in result.items():
            print(f"{part}: {figures}", file=sys.stderr)
    ok = (
        result["accounts"]["charges"] == result["accounts"]["charges_expected"]
        and result["accounts"]["server_429_share"] <= 0.01
        and result["one_account_shared_budget"]["server_429_share"] <= 0.01
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
