"""Stripe ingestion at the rate limit: plain SDK auto-pagination against ours, in one run.

    python benchmarks/bench_stripe_ingest.py [--json] [--charges 50000] [--latency 0.05] [--limit-rps 100]

The local Stripe-compatible server runs in its own process (its own GIL: it must not be the
bottleneck, nor slow the client down) with `latency` seconds per request and a rolling
`limit-rps` requests-per-second limit answering 429 + `Retry-After: 1` beyond it. It serves
`charges` charges over one UTC day, busier in the afternoon than at night (a real day is not
uniform). Then, one after the other, against the same server:

- sequential: `client.v1.charges.list(params={created gte/lt, limit 100}).auto_paging_iter()`
  through a `StripeClient` that retries 429 honouring Retry-After (our `make_client`, no pacing);
- ours: `fetch_charges(client, start, end, slices=None)` (automatic slicing) through
  `make_client(requests_per_second=client_rps, burst=args.burst)` (default 95% of the limit).

Prints one JSON line (with --json; otherwise a readable summary too).
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import stripe  # noqa: E402

from recon_dagster.sources.stripe_api import StripeUnavailableError, fetch_charges, make_client  # noqa: E402
from recon_dagster.testing.stripe_server import DEFAULT_API_KEY, StripeServer, make_charge  # noqa: E402

DAY = datetime(2024, 3, 1, tzinfo=timezone.utc)
T0 = int(DAY.timestamp())


def day_of_charges(count: int, seed: int = 7) -> list[dict]:
    """`count` charges over one day; hourly weights from 1 (night) to 4 (afternoon)."""
    rng = random.Random(seed)
    weights = [1, 1, 1, 1, 1, 1, 1.5, 2, 2.5, 3, 3, 3.5, 4, 4, 4, 4, 3.5, 3, 3, 2.5, 2, 1.5, 1, 1]
    hours = rng.choices(range(24), weights=weights, k=count)
    charges = []
    for i, hour in enumerate(hours):
        created = T0 + hour * 3600 + rng.randrange(3600)
        amount = rng.randrange(100, 50_000)
        charges.append(make_charge(f"ch_{i:08d}", amount, created=created, customer=f"cus_{i % 997:04d}",
                                   payment_intent=f"pi_{i:08d}", amount_refunded=amount if i % 50 == 0 else 0))  # fmt: skip
    return charges


def _serve(conn, count: int, latency: float, limit_rps: float) -> None:
    """Child process: build the data, serve it, answer `count429`/`cpu`/`stop` over the pipe."""
    server = StripeServer(day_of_charges(count), latency=latency, rate_limit=limit_rps).start()
    conn.send(server.url)
    while True:
        command = conn.recv()
        if command == "count429":
            conn.send(server.count(429))
        elif command == "stats":
            log = server.requests
            conn.send({"requests": len(log), "first_to_last_request_seconds": round(log[-1].timestamp - log[0].timestamp, 3) if log else 0})
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--charges", type=int, default=50_000)
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per request")
    parser.add_argument("--limit-rps", type=float, default=100.0, help="server rate limit, requests per second")
    parser.add_argument("--client-rps", type=float, default=None, help="our client's limit (default 95%% of the server's)")
    parser.add_argument("--burst", type=int, default=3, help="our pacer's catch-up allowance in requests (1: even spacing)")
    parser.add_argument("--max-workers", type=int, default=8, help="concurrent paginations (ours)")
    parser.add_argument("--skip-sequential", action="store_true", help="only ours (quick runs)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() before ingesting (a process-level knob; shows what the cyclic GC costs)")
    args = parser.parse_args(argv)
    client_rps = args.client_rps or round(args.limit_rps * 0.95, 2)

    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(child, args.charges, args.latency, args.limit_rps), daemon=True)
    server.start()
    try:
        url = parent.recv()
        start, end = DAY, DAY + timedelta(days=1)

        def sequential() -> int:
            client = make_client(DEFAULT_API_KEY, api_base=url)  # retries 429 (Retry-After), no pacing
            pages = client.v1.charges.list(params={"created": {"gte": T0, "lt": T0 + 86_400}, "limit": 100})
            return sum(1 for _charge in pages.auto_paging_iter())

        def ours() -> int:
            client = make_client(DEFAULT_API_KEY, api_base=url, requests_per_second=client_rps, burst=args.burst)
            return fetch_charges(client, start, end, slices=None, max_workers=args.max_workers).height

        if args.gc_freeze:
            gc.freeze()
        seq = None if args.skip_sequential else _timed(parent, sequential)
        time.sleep(1.1)  # let the server's rolling window empty
        our = _timed(parent, ours)
        _ask(parent, "stop")
    finally:
        server.join(timeout=10)
        if server.is_alive():
            server.kill()

    result = {
        "benchmark": "stripe_ingest",
        "charges": args.charges,
        "latency_seconds": args.latency,
        "limit_rps": args.limit_rps,
        "client_rps": client_rps,
        "burst": args.burst,
        "max_workers": args.max_workers,
        "gc_freeze": args.gc_freeze,
        "charges_per_second": our["charges_per_second"],
        "sequential_charges_per_second": seq and seq["charges_per_second"],
        "ceiling_charges_per_second": args.limit_rps * 100,
        "fraction_of_ceiling": round(our["charges_per_second"] / (args.limit_rps * 100), 3),
        "unrecovered_429": our["unrecovered_429"] + (seq["unrecovered_429"] if seq else 0),
        "server_429": our["server_429"],
        "seconds": our["seconds"],
        "complete": our["charges"] == args.charges and (seq is None or seq["charges"] == args.charges),
        "ours": our,
        "sequential": seq and {**seq, "client": "StripeClient via make_client: retries 429 honouring Retry-After, no pacing"},
        "cpus": os.cpu_count(),
    }
    if not args.json:
        print(f"ours:       {our['charges']} charges in {our['seconds']} s = {our['charges_per_second']} charges/s "
              f"({result['fraction_of_ceiling']:.0%} of {args.limit_rps * 100:.0f}); 429s sent {our['server_429']}, "
              f"unrecovered {our['unrecovered_429']}")  # fmt: skip
        if seq:
            print(f"sequential: {seq['charges']} charges in {seq['seconds']} s = {seq['charges_per_second']} charges/s")
    print(json.dumps(result))
    return 0 if result["complete"] and result["unrecovered_429"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
