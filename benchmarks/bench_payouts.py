"""Time payout reconciliation over a month of daily automatic payouts of a busy account.

    python benchmarks/bench_payouts.py [--days 30] [--charges-per-day 100000] [--json] [--seed 7]
    [--short-ids]

The frames are generated in Polars, in the core's schemas: one automatic payout a day, each paying
out that day's charges (with Stripe's fee on each), ~1% refunds and a few disputes, plus its own
`payout` transaction (3M balance transactions at the defaults); the payments table holds every
charge once, half under the charge id and half under its PaymentIntent id, except ~0.5% missing
and a few with another amount; the bank has one deposit per payout, 0-2 days after its arrival
date, except two missing, and one deposit that is no payout. Then, in a fresh child process that
reads the frames back (LZ4-compressed Arrow IPC, so in memory, not mapped):

- `seconds`: wall time of one `reconcile_payouts` call over the whole month, best of 3;
- `peak_mib`: peak RSS growth over those calls: `ru_maxrss` after them, minus the RSS just before
  the first (the frames read back, collected). Reading the frames may have peaked a little above
  that RSS, so the figure errs high, never low; it counts the core's working memory, not its input.

Ids are Stripe-sized (27 characters); the half of the table under PaymentIntent ids makes every
other charge a second lookup. Both are the costly case: every match is checked on the id text,
and short ids (--short-ids, at most 12 bytes) compare inside Polars' string views, long ones
in their buffers, at random. The human output adds each run's process CPU time and the load
average: on a shared machine, wall time well above CPU time / threads is time spent waiting.

Targets: seconds < 2, peak_mib < 1024. Exit status is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from recon_dagster.core.payout_frames import (
    BANK_SCHEMA,
    PAYMENT_ROWS_SCHEMA,
    PAYOUT_TRANSACTIONS_SCHEMA,
    PAYOUTS_SCHEMA,
)
from recon_dagster.core.payouts import reconcile_payouts

FIRST = date(2024, 1, 1)
START = datetime(2024, 1, 1, tzinfo=UTC)
TARGETS = {"seconds": 2.0, "peak_mib": 1024}
FRAMES = ("payouts", "transactions", "payments", "bank")
SHORT_IDS = False  # --short-ids


def _day_payout(day: pl.Expr) -> pl.Expr:
    return pl.concat_str(pl.lit("po_"), day.cast(pl.String))


def _stripe_id(prefix: str, i: pl.Expr) -> pl.Expr:
    """A Stripe-sized id (prefix + 24 characters, `ch_3PxK0000000000000001234`): ids of more than
    12 bytes are not inlined in Polars' string views, so comparing them costs what real ones do.
    With --short-ids, `ch_1234` (inlined: the cheap case)."""
    if SHORT_IDS:
        return pl.concat_str(pl.lit(f"{prefix}_"), i.cast(pl.String))
    return pl.concat_str(pl.lit(f"{prefix}_3PxK"), i.cast(pl.String).str.pad_start(20, "0"))


def transactions(days: int, per_day: int, seed: int) -> pl.DataFrame:
    """Each day's charges (fee 2.9% + 30), ~1% refunds, 3 disputes; without the payouts' own
    rows."""
    n = days * per_day
    i = pl.int_range(0, n, dtype=pl.Int64)
    base = pl.select(i=i).with_columns(h=pl.col("i").hash(seed), day=pl.col("i") // per_day)
    amount = (pl.col("h") % 100_000 + 50).cast(pl.Int64)
    created = pl.lit(START) + pl.duration(
        days=pl.col("day") - 2, microseconds=(pl.col("h") % 86_400_000_000).cast(pl.Int64)
    )
    charges = base.select(
        id=_stripe_id("txn", pl.col("i") * 3),
        payout=_day_payout(pl.col("day")),
        amount=amount,
        fee=amount * 29 // 1000 + 30,
        net=amount - (amount * 29 // 1000 + 30),
        currency=pl.lit("USD"),
        type=pl.lit("charge"),
        reporting_category=pl.lit("charge"),
        source=_stripe_id("ch", pl.col("i")),
        charge=_stripe_id("ch", pl.col("i")),
        payment_intent=_stripe_id("pi", pl.col("i")),
        created=created,
    )
    refunded = base.filter(pl.col("h") % 100 == 0)  # ~1%: a partial refund of an earlier charge
    refunds = refunded.select(
        id=_stripe_id("txn", pl.col("i") * 3 + 1),
        payout=_day_payout(pl.col("day")),
        amount=-(amount // 2),
        fee=pl.lit(0, pl.Int64),
        net=-(amount // 2),
        currency=pl.lit("USD"),
        type=pl.lit("refund"),
        reporting_category=pl.lit("refund"),
        source=_stripe_id("re", pl.col("i")),
        charge=pl.lit(None, pl.String),
        payment_intent=pl.lit(None, pl.String),
        created=created,
    )
    disputed = base.filter(pl.col("i") % per_day < 3)  # 3 a day, with Stripe's 15.00 dispute fee
    disputes = disputed.select(
        id=_stripe_id("txn", pl.col("i") * 3 + 2),
        payout=_day_payout(pl.col("day")),
        amount=-amount,
        fee=pl.lit(1500, pl.Int64),
        net=-amount - 1500,
        currency=pl.lit("USD"),
        type=pl.lit("adjustment"),
        reporting_category=pl.lit("dispute"),
        source=_stripe_id("du", pl.col("i")),
        charge=pl.lit(None, pl.String),
        payment_intent=pl.lit(None, pl.String),
        created=created,
    )
    return pl.concat([charges, refunds, disputes]).cast(PAYOUT_TRANSACTIONS_SCHEMA)


def generate(days: int, per_day: int, seed: int) -> dict[str, pl.DataFrame]:
    tx = transactions(days, per_day, seed)
    nets = tx.group_by("payout").agg(amount=pl.col("net").sum()).sort("payout")
    day = pl.col("payout").str.strip_prefix("po_").cast(pl.Int64)
    payouts = nets.select(
        id="payout",
        amount="amount",
        currency=pl.lit("USD"),
        arrival_date=pl.lit(FIRST) + pl.duration(days=day),
        status=pl.lit("paid"),
        automatic=pl.lit(True),
        failure_code=pl.lit(None, pl.String),
        trace_id=pl.concat_str(pl.lit("TRACE"), day.cast(pl.String)),
        created=pl.lit(START) + pl.duration(days=day - 2),
    ).cast(PAYOUTS_SCHEMA)
    own = payouts.select(
        id=pl.concat_str(pl.lit("txn_"), "id"),
        payout="id",
        amount=-pl.col("amount"),
        fee=pl.lit(0, pl.Int64),
        net=-pl.col("amount"),
        currency="currency",
        type=pl.lit("payout"),
        reporting_category=pl.lit("payout"),
        source="id",
        charge=pl.lit(None, pl.String),
        payment_intent=pl.lit(None, pl.String),
        created="created",
    ).cast(PAYOUT_TRANSACTIONS_SCHEMA)
    charges = tx.filter(pl.col("reporting_category") == "charge").with_columns(
        h=pl.col("charge").hash(seed + 1)
    )
    payments = (
        charges.filter(pl.col("h") % 200 != 0)
        .select(  # ~0.5% missing
            id=pl.when(pl.col("h") % 2 == 0).then("charge").otherwise("payment_intent"),
            amount=pl.when(pl.col("h") % 100_003 == 1)
            .then(pl.col("amount") + 1)
            .otherwise("amount"),  # a few mismatches
            currency="currency",
        )
        .cast(PAYMENT_ROWS_SCHEMA)
    )
    missing = [f"po_{days // 4}", f"po_{3 * days // 4}"]
    bank = payouts.filter(~pl.col("id").is_in(missing)).select(  # two missing
        id=pl.concat_str(pl.lit("bank_"), "id"),
        amount="amount",
        currency="currency",
        date=pl.col("arrival_date") + pl.duration(days=pl.col("amount") % 3),
        reference=pl.concat_str(pl.lit("STRIPE PAYOUT "), "trace_id"),
    )
    extra = pl.DataFrame(
        {
            "id": ["bank_extra"],
            "amount": [123_456],
            "currency": ["USD"],
            "date": [FIRST + timedelta(days=days // 2)],
            "reference": ["STRIPE TRANSFER"],
        }
    )
    bank = pl.concat([bank.cast(BANK_SCHEMA), extra.cast(BANK_SCHEMA)])
    return {
        "payouts": payouts,
        "transactions": pl.concat([tx, own]),
        "payments": payments,
        "bank": bank,
    }


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def child(folder: Path, days: int) -> None:
    """Read the frames, then three timed calls; peak RSS growth over them from `ru_maxrss`. Each
    call's process CPU time is reported too: on a shared machine, wall time above it (or above it
    divided by the threads) is time spent waiting for a core."""
    # Written compressed, so reading them decompresses into memory: no page of theirs is mapped
    # from the file and first touched (and counted) during the calls.
    frames = {name: pl.read_ipc(folder / f"{name}.arrow") for name in FRAMES}
    last = FIRST + timedelta(days=days - 1)
    gc.collect()
    before = rss_kib()
    runs, cpu, result = [], [], None
    for _ in range(3):
        result = None
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        result = reconcile_payouts(
            frames["payouts"],
            frames["transactions"],
            frames["payments"],
            frames["bank"],
            first=FIRST,
            last=last,
            as_of=last + timedelta(days=10),
        )
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result is not None
    print(
        json.dumps(
            {
                "seconds": round(min(runs), 3),
                "runs": [round(r, 3) for r in runs],
                "peak_mib": round(peak, 1),
                "cpu_seconds": [round(c, 3) for c in cpu],
                "load": [round(x, 2) for x in os.getloadavg()],
                "input_mib": round(sum(f.estimated_size() for f in frames.values()) / 2**20, 1),
                "status": result.status,
                "counts": result.counts(),
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--charges-per-day", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument(
        "--short-ids", action="store_true", help="ids of at most 12 bytes instead of Stripe's 27"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child), args.days)
        return 0

    global SHORT_IDS
    SHORT_IDS = args.short_ids
    t0 = time.perf_counter()
    frames = generate(args.days, args.charges_per_day, args.seed)
    generate_seconds = time.perf_counter() - t0
    sizes = {"payouts": frames["payouts"].height, "transactions": frames["transactions"].height}
    with tempfile.TemporaryDirectory(prefix="bench_payouts_") as folder:
        for name, frame in frames.items():
            frame.write_ipc(Path(folder) / f"{name}.arrow", compression="lz4")
        del frames
        command = [sys.executable, __file__, "--child", folder, "--days", str(args.days)]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    measured = json.loads(done.stdout)
    out = {
        "days": args.days,
        **sizes,
        "seconds": measured["seconds"],
        "peak_mib": measured["peak_mib"],
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"{args.days} days, {sizes['payouts']} payouts, {sizes['transactions']:,} balance "
        "transactions "
        f"(generated in {generate_seconds:.1f}s; inputs {measured['input_mib']} MiB; "
        f"{pl.thread_pool_size()} Polars threads)"
    )
    for key, target in (("seconds", "< 2"), ("peak_mib", "< 1024")):
        mark = "ok" if measured[key] < TARGETS[key] else "MISSED"
        print(f"{key:<10}{measured[key]:>10}  target {target}: {mark}")
    print(
        f"runs {measured['runs']} s; CPU {measured['cpu_seconds']} s; load average "
        f"{measured['load']}"
    )
    print(f"status {measured['status']}; counts {measured['counts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
