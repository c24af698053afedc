"""Stripe ingestion under Stripe's real rate limits: plain SDK auto-pagination against ours, in one
run.

    python benchmarks/bench_stripe_ingest.py [--json] [--charges 50000] [--latency 0.05]
        [--endpoint-limit-rps 25] [--limit-rps 100] [--parallel-balance-transactions]

The local Stripe-compatible server runs in its own process (its own GIL: it must not be the
bottleneck, nor slow the client down) with `latency` seconds per request and Stripe's two rolling
one-second limits: `endpoint-limit-rps` per endpoint (Stripe's default 25) and `limit-rps` in all
(100 in live mode), answering 429 + `Retry-After: 1` beyond either. The client uses a fake live-mode
key (`sk_live_…`), so its account budget is live mode's. The server holds `charges` charges over
one UTC day, busier in the afternoon than at night (a real day is not uniform). Then, one after the
other, against the same server:

- sequential: `client.v1.charges.list(params={created gte/lt, limit 100}).auto_paging_iter()`
  through `make_client`'s defaults (one request at a time: 50 ms apart, under any budget);
- ours: `fetch_charges(client, start, end, slices=None)` (automatic slicing) through
  `make_client(requests_per_second=client_rps, endpoint_requests_per_second=client_endpoint_rps)`,
  which aims at 95% of each budget, on `--max-workers` threads; `GET /v1/charges` is one endpoint,
  so 25 requests/s of 100 charges is the ceiling (`fraction_of_ceiling`);
- with `--parallel-balance-transactions`: the charges again and, at the same time, the balance
  transactions of `--payouts` payouts paying out those charges (`fetch_payout_transactions`, a
  thread
  per payout, `GET /v1/balance_transactions`: another endpoint), each endpoint's requests/s and
  busiest second from the server's records.

`requests` and `server_429` count every run's requests. Prints one JSON line (with --json;
otherwise a readable summary too).
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import random
import sys
import threading
import time
from bisect import bisect_left
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import stripe

from recon_dagster.sources.stripe_charges import fetch_charges
from recon_dagster.sources.stripe_client import StripeUnavailableError, make_client
from recon_dagster.sources.stripe_pacing import TARGET, endpoint
from recon_dagster.sources.stripe_payouts import fetch_payout_transactions
from recon_dagster.testing.stripe_server import (
    StripeServer,
    make_balance_transaction,
    make_charge,
    make_payout,
    payout_transactions,
)

DAY = datetime(2024, 3, 1, tzinfo=UTC)
T0 = int(DAY.timestamp())
LIVE_KEY = (
    "sk_live_recon_bench_0000"  # fake, live-shaped: the server is told to accept it; never printed
)
CHARGES, TRANSACTIONS = "GET /v1/charges", "GET /v1/balance_transactions"


def day_of_charges(count: int, seed: int = 7) -> list[dict]:
    """`count` charges over one day; hourly weights from 1 (night) to 4 (afternoon)."""
    rng = random.Random(seed)
    weights = [1, 1, 1, 1, 1, 1, 1.5, 2, 2.5, 3, 3, 3.5, 4, 4, 4, 4, 3.5, 3, 3, 2.5, 2, 1.5, 1, 1]
    hours = rng.choices(range(24), weights=weights, k=count)
    charges = []
    for i, hour in enumerate(hours):
        created = T0 + hour * 3600 + rng.randrange(3600)
        amount = rng.randrange(100, 50_000)
        charges.append(
            make_charge(
                f"ch_{i:08d}",
                amount,
                created=created,
                customer=f"cus_{i % 997:04d}",
                payment_intent=f"pi_{i:08d}",
                amount_refunded=amount if i % 50 == 0 else 0,
            )
        )
    return charges


def payouts_of(charges: list[dict], payouts: int) -> tuple[list[dict], list[dict]]:
    """`payouts` payouts arriving two days later, each paying out every `payouts`-th charge (3%
    fee), with their balance transactions: one per charge (its source the charge) and the payout's
    own."""
    ledger, paid = [], []
    for k in range(payouts):
        mine = charges[k::payouts]
        fees = [round(c["amount"] * 0.03) for c in mine]
        payout = make_payout(
            f"po_{k:03d}", sum(c["amount"] for c in mine) - sum(fees), arrival_date=T0 + 2 * 86_400
        )
        ledger += [
            make_balance_transaction(
                f"txn_{c['id']}",
                c["amount"],
                fee=fee,
                source=c["id"],
                payout=payout["id"],
                created=c["created"],
            )
            for c, fee in zip(mine, fees, strict=True)
        ]
        ledger.append(payout_transactions(payout))
        paid.append(payout)
    return paid, ledger


def _serve(
    conn, count: int, latency: float, limit_rps: float, endpoint_limit_rps: float, payouts: int
) -> None:
    """Child process: build the data, serve it, answer commands over the pipe until `stop`."""
    charges = day_of_charges(count)
    paid, ledger = payouts_of(charges, payouts) if payouts else ([], [])
    server = StripeServer(
        charges,
        api_key=LIVE_KEY,
        latency=latency,
        rate_limit=limit_rps,
        endpoint_rate_limit=endpoint_limit_rps,
        payouts=paid,
        balance_transactions=ledger,
    ).start()
    conn.send((server.url, [p["id"] for p in paid], len(ledger)))
    while True:
        command = conn.recv()
        if command == "count429":
            conn.send(server.count(429))
        elif command == "stats":
            log = server.requests
            conn.send(
                {
                    "requests": len(log),
                    "first_to_last_request_seconds": round(log[-1].timestamp - log[0].timestamp, 3)
                    if log
                    else 0,
                }
            )
        elif command == "records":
            conn.send([(r.method, r.path, r.status, r.timestamp) for r in server.requests])
        elif command == "cpu":
            times = os.times()
            conn.send(times.user + times.system)
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


def _timed(conn, ingest) -> dict:
    """Run `ingest()` -> charges; seconds, charges, 429s sent and recovered, CPU of both sides."""
    _ask(conn, "clear")
    server_cpu, client_cpu, began = _ask(conn, "cpu"), time.process_time(), time.perf_counter()
    unrecovered, error = 0, None
    try:
        charges = ingest()
    except (StripeUnavailableError, stripe.RateLimitError) as exc:
        charges, error = 0, str(exc)
        unrecovered = int(isinstance(exc, stripe.RateLimitError) or "rate limited" in str(exc))
    seconds = time.perf_counter() - began
    return {
        "charges": charges,
        "seconds": round(seconds, 3),
        "charges_per_second": round(charges / seconds, 1),
        "server_429": _ask(conn, "count429"),
        **_ask(conn, "stats"),
        "unrecovered_429": unrecovered,
        "client_cpu_seconds": round(time.process_time() - client_cpu, 2),
        "server_cpu_seconds": round(_ask(conn, "cpu") - server_cpu, 2),
        "error": error,
    }


def busiest_second(times: list[float]) -> int:
    """The most requests in any one-second window (Stripe's limits are rolling one-second
    windows)."""
    times = sorted(times)
    return max((bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def per_endpoint(records: list[tuple], endpoint_limit: float, limit: float) -> dict:
    """Each endpoint's requests/s (over its own first to last request) and busiest second, and both
    together while both were busy: within their limits, and more than one endpoint's limit in sum? A
    busiest second counts the requests the server accepted, as its limits do, stamped when answered
    (a little jitter)."""
    by: dict[str, list[float]] = {}
    refused: dict[str, int] = {}
    for method, path, status, timestamp in records:
        name = endpoint(method, path)
        if status == 429:
            refused[name] = refused.get(name, 0) + 1
        else:
            by.setdefault(name, []).append(timestamp)
    report = {}
    for name, times in sorted(by.items()):
        span = max(times) - min(times)
        report[name] = {
            "requests": len(times),
            "requests_per_second": round(len(times) / span, 2) if span else None,
            "busiest_second": busiest_second(times),
            "limit_rps": endpoint_limit,
            "server_429": refused.get(name, 0),
        }
        report[name]["within_limit"] = report[name]["busiest_second"] <= endpoint_limit
    both = [by.get(CHARGES, []), by.get(TRANSACTIONS, [])]
    start, stop = max(min(t, default=0) for t in both), min(max(t, default=0) for t in both)
    overlap = [t for times in both for t in times if start <= t <= stop]
    sum_rps = round(len(overlap) / (stop - start), 2) if stop > start else 0.0
    every = [t for times in by.values() for t in times]
    return {
        "endpoints": report,
        "overlap_seconds": round(max(stop - start, 0.0), 3),
        "sum_requests_per_second": sum_rps,  # both endpoints together, while both were busy
        "busiest_second_all": busiest_second(every),
        "within_limits": all(e["within_limit"] for e in report.values())
        and busiest_second(every) <= limit,
        "sum_exceeds_one_endpoint": sum_rps > endpoint_limit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--charges", type=int, default=50_000)
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per request")
    parser.add_argument(
        "--limit-rps",
        type=float,
        default=100.0,
        help="server limit in all, requests per second (live mode's)",
    )
    parser.add_argument(
        "--endpoint-limit-rps",
        type=float,
        default=25.0,
        help="server limit per endpoint, requests per second",
    )
    parser.add_argument(
        "--client-rps",
        type=float,
        default=None,
        help="our client's budget in all (default: the server's)",
    )
    parser.add_argument(
        "--client-endpoint-rps",
        type=float,
        default=None,
        help="our client's budget per endpoint (default: the server's); it aims at 95%% of each",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=1,
        help="our pacer's catch-up allowance in requests (1: even spacing)",
    )
    # 3: at 23.75 requests/s and ~60 ms a request, three in flight keep the endpoint's budget busy;
    # more only cut the day into more sub-windows, each ending on a part-filled page (8: ~5% more
    # requests).
    parser.add_argument(
        "--max-workers",
        type=int,
        default=8,
        help="concurrent paginations of the charges at most (ours; fetch_charges' default, sized "
        "down to the latency)",
    )
    parser.add_argument("--skip-sequential", action="store_true", help="only ours (quick runs)")
    parser.add_argument(
        "--parallel-balance-transactions",
        action="store_true",
        help="also list the charges and, in parallel, the balance transactions of --payouts "
        "payouts",
    )
    parser.add_argument(
        "--payouts", type=int, default=8, help="payouts sharing the charges' balance transactions"
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() before ingesting (a process-level knob; shows what the cyclic GC costs)",
    )
    args = parser.parse_args(argv)
    client_rps = args.client_rps or args.limit_rps
    client_endpoint_rps = args.client_endpoint_rps or args.endpoint_limit_rps
    ceiling = (
        min(args.endpoint_limit_rps, args.limit_rps) * 100
    )  # charges/s: one endpoint's requests of 100

    parent, child = mp.Pipe()
    payouts = args.payouts if args.parallel_balance_transactions else 0
    server = mp.get_context("spawn").Process(
        target=_serve,
        args=(child, args.charges, args.latency, args.limit_rps, args.endpoint_limit_rps, payouts),
        daemon=True,
    )
    server.start()
    try:
        url, payout_ids, transactions = parent.recv()
        start, end = DAY, DAY + timedelta(days=1)

        # As the resource does: a client per call, one budget per account.
        def client() -> stripe.StripeClient:
            return make_client(
                LIVE_KEY,
                api_base=url,
                requests_per_second=client_rps,
                endpoint_requests_per_second=client_endpoint_rps,
                burst=args.burst,
            )

        def sequential() -> int:
            pages = make_client(LIVE_KEY, api_base=url).v1.charges.list(
                params={"created": {"gte": T0, "lt": T0 + 86_400}, "limit": 100}
            )
            return sum(1 for _charge in pages.auto_paging_iter())

        def ours() -> int:
            return fetch_charges(
                client(), start, end, slices=None, max_workers=args.max_workers
            ).height

        listed: dict[str, Any] = {}

        def with_transactions() -> int:
            def transactions_job() -> None:
                began = time.perf_counter()
                try:
                    listed["transactions"] = fetch_payout_transactions(
                        client(), payout_ids
                    ).height  # a thread per payout
                except BaseException as exc:  # reported, and the run marked incomplete
                    listed["error"] = exc
                listed["transactions_seconds"] = time.perf_counter() - began

            thread = threading.Thread(target=transactions_job)
            thread.start()
            try:
                return ours()
            finally:
                thread.join()
                if isinstance(listed.get("error"), BaseException):
                    raise listed["error"]

        if args.gc_freeze:
            gc.freeze()
        seq = None if args.skip_sequential else _timed(parent, sequential)
        time.sleep(1.1)  # let the server's rolling windows empty
        our = _timed(parent, ours)
        parallel = None
        if args.parallel_balance_transactions:
            time.sleep(1.1)
            parallel = _timed(parent, with_transactions)
            parallel.update(
                per_endpoint(_ask(parent, "records"), args.endpoint_limit_rps, args.limit_rps)
            )
            seconds = listed.get("transactions_seconds") or 0
            parallel["transactions"] = listed.get("transactions", 0)
            parallel["transactions_per_second"] = (
                round(parallel["transactions"] / seconds, 1) if seconds else 0.0
            )
            parallel["complete"] = (
                parallel["charges"] == args.charges and parallel["transactions"] == transactions
            )
        _ask(parent, "stop")
    finally:
        server.join(timeout=10)
        if server.is_alive():
            server.kill()

    runs = [run for run in (seq, our, parallel) if run]
    requests = sum(run["requests"] for run in runs)
    server_429 = sum(run["server_429"] for run in runs)
    unrecovered = sum(run["unrecovered_429"] for run in runs)
    fraction = round(our["charges_per_second"] / ceiling, 3)
    result = {
        "benchmark": "stripe_ingest",
        "charges": args.charges,
        "latency_seconds": args.latency,
        "endpoint_limit_rps": args.endpoint_limit_rps,
        "limit_rps": args.limit_rps,
        "key_mode": "live",
        "client_rps": client_rps,
        "client_endpoint_rps": client_endpoint_rps,
        "paced_rps": round(min(client_rps, client_endpoint_rps) * TARGET, 2),  # for one endpoint
        "burst": args.burst,
        "max_workers": args.max_workers,
        "gc_freeze": args.gc_freeze,
        "charges_per_second": our["charges_per_second"],
        "sequential_charges_per_second": seq and seq["charges_per_second"],
        "ceiling_charges_per_second": ceiling,
        "fraction_of_ceiling": fraction,
        "unrecovered_429": unrecovered,
        "server_429": server_429,
        "requests": requests,
        "server_429_fraction": round(server_429 / requests, 4) if requests else 0.0,
        "targets_met": fraction >= 0.90 and unrecovered == 0 and server_429 <= 0.01 * requests,
        "seconds": our["seconds"],
        "complete": our["charges"] == args.charges
        and (seq is None or seq["charges"] == args.charges)
        and (parallel is None or parallel["complete"]),
        "ours": our,
        "sequential": seq and {**seq, "client": "make_client defaults, one request at a time"},
        "parallel_balance_transactions": parallel,
        "cpus": os.cpu_count(),
    }
    if not args.json:
        print(
            f"ours:       {our['charges']} charges in {our['seconds']} s = "
            f"{our['charges_per_second']} charges/s "
            f"({fraction:.0%} of {ceiling:.0f}); 429s sent {our['server_429']}, unrecovered "
            f"{our['unrecovered_429']}"
        )
        if seq:
            print(
                f"sequential: {seq['charges']} charges in {seq['seconds']} s = "
                f"{seq['charges_per_second']} charges/s"
            )
        if parallel:
            for name, figures in parallel["endpoints"].items():
                print(
                    f"parallel:   {name}: {figures['requests_per_second']} requests/s, busiest "
                    "second "
                    f"{figures['busiest_second']} of {figures['limit_rps']:.0f} allowed"
                )
            print(
                f"parallel:   together {parallel['sum_requests_per_second']} requests/s, busiest "
                "second "
                f"{parallel['busiest_second_all']} of {args.limit_rps:.0f} allowed"
            )
    print(json.dumps(result))
    return 0 if result["complete"] and unrecovered == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
