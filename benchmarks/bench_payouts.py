"""Time payout reconciliation over a month of daily automatic payouts of a busy account.

    python benchmarks/bench_payouts.py [--days 30] [--charges-per-day 100000] [--json] [--seed 7]

The frames are generated in Polars, in the core's schemas: one automatic payout a day, each paying
out that day's charges (with Stripe's fee on each), ~1% refunds and a few disputes, plus its own
`payout` transaction (3M balance transactions at the defaults); the payments table holds every
charge once, half under the charge id and half under its PaymentIntent id, except ~0.5% missing
and a few with another amount; the bank has one deposit per payout, 0-2 days after its arrival
date, except two missing, and one deposit that is no payout. Then, in a fresh child process that
reads the frames back (LZ4-compressed Arrow IPC, so in memory, not mapped):

- `seconds`: wall time of one `reconcile_payouts` call over the whole month, best of 3;
- `peak_mib`: peak RSS growth over those calls, from `ru_maxrss` (read before the first call, so
  it counts the core's working memory, not the input frames).

Targets: seconds < 2, peak_mib < 1024. Exit status is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from recon_dagster.core.payout_frames import BANK_SCHEMA, PAYMENT_ROWS_SCHEMA, PAYOUT_TRANSACTIONS_SCHEMA, PAYOUTS_SCHEMA
from recon_dagster.core.payouts import reconcile_payouts

FIRST = date(2024, 1, 1)
START = datetime(2024, 1, 1, tzinfo=UTC)
TARGETS = {"seconds": 2.0, "peak_mib": 1024}
FRAMES = ("payouts", "transactions", "payments", "bank")


def _day_payout(day: pl.Expr) -> pl.Expr:
    return pl.concat_str(pl.lit("po_"), day.cast(pl.String))


def transactions(days: int, per_day: int, seed: int) -> pl.DataFrame:
    """Each day's charges (fee 2.9% + 30), ~1% refunds, 3 disputes; without the payouts' own rows."""
    n = days * per_day
    i = pl.int_range(0, n, dtype=pl.Int64)
    base = pl.select(i=i).with_columns(h=pl.col("i").hash(seed), day=pl.col("i") // per_day)
    amount = (pl.col("h") % 100_000 + 50).cast(pl.Int64)
    created = pl.lit(START) + pl.duration(days=pl.col("day") - 2, microseconds=(pl.col("h") % 86_400_000_000).cast(pl.Int64))
    charges = base.select(
        id=pl.concat_str(pl.lit("txn_ch_"), pl.col("i").cast(pl.String)),
        payout=_day_payout(pl.col("day")),
        amount=amount,
        fee=amount * 29 // 1000 + 30,
        net=amount - (amount * 29 // 1000 + 30),
        currency=pl.lit("USD"),
        type=pl.lit("charge"),
        reporting_category=pl.lit("charge"),
        source=pl.concat_str(pl.lit("ch_"), pl.col("i").cast(pl.String)),
        charge=pl.concat_str(pl.lit("ch_"), pl.col("i").cast(pl.String)),
        payment_intent=pl.concat_str(pl.lit("pi_"), pl.col("i").cast(pl.String)),
        created=created,
    )
    refunded = base.filter(pl.col("h") % 100 == 0)  # ~1%: a partial refund of an earlier charge
    refunds = refunded.select(
        id=pl.concat_str(pl.lit("txn_re_"), pl.col("i").cast(pl.String)),
        payout=_day_payout(pl.col("day")),
        amount=-(amount // 2),
        fee=pl.lit(0, pl.Int64),
        net=-(amount // 2),
        currency=pl.lit("USD"),
        type=pl.lit("refund"),
        reporting_category=pl.lit("refund"),
        source=pl.concat_str(pl.lit("re_"), pl.col("i").cast(pl.String)),
        charge=pl.lit(None, pl.String),
        payment_intent=pl.lit(None, pl.String),
        created=created,
    )
    disputed = base.filter(pl.col("i") % per_day < 3)  # 3 a day, with Stripe's 15.00 dispute fee
    disputes = disputed.select(
        id=pl.concat_str(pl.lit("txn_du_"), pl.col("i").cast(pl.String)),
        payout=_day_payout(pl.col("day")),
        amount=-amount,
        fee=pl.lit(1500, pl.Int64),
        net=-amount - 1500,
        currency=pl.lit("USD"),
        type=pl.lit("adjustment"),
        reporting_category=pl.lit("dispute"),
        source=pl.concat_str(pl.lit("du_"), pl.col("i").cast(pl.String)),
        charge=pl.lit(None, pl.String),
        payment_intent=pl.lit(None, pl.String),
        created=created,
    )
    return pl.concat([charges, refunds, disputes]).cast(PAYOUT_TRANSACTIONS_SCHEMA)  # type: ignore[arg-type]


def generate(days: int, per_day: int, seed: int) -> dict[str, pl.DataFrame]:
    tx = transactions(days, per_day, seed)
    nets = tx.group_by("payout").agg(amount=pl.col("net").sum()).sort("payout")
    day = pl.col("payout").str.strip_prefix("po_").cast(pl.Int64)
    payouts = nets.select(
        id="payout", amount="amount", currency=pl.lit("USD"),
        arrival_date=pl.lit(FIRST) + pl.duration(days=day),
        status=pl.lit("paid"), automatic=pl.lit(True), failure_code=pl.lit(None, pl.String),
        trace_id=pl.concat_str(pl.lit("TRACE"), day.cast(pl.String)),
        created=pl.lit(START) + pl.duration(days=day - 2),
    ).cast(PAYOUTS_SCHEMA)  # type: ignore[arg-type]  # fmt: skip
    own = payouts.select(
        id=pl.concat_str(pl.lit("txn_"), "id"), payout="id", amount=-pl.col("amount"), fee=pl.lit(0, pl.Int64),
        net=-pl.col("amount"), currency="currency", type=pl.lit("payout"), reporting_category=pl.lit("payout"),
        source="id", charge=pl.lit(None, pl.String), payment_intent=pl.lit(None, pl.String), created="created",
    ).cast(PAYOUT_TRANSACTIONS_SCHEMA)  # type: ignore[arg-type]  # fmt: skip
    charges = tx.filter(pl.col("reporting_category") == "charge").with_columns(h=pl.col("charge").hash(seed + 1))
    payments = charges.filter(pl.col("h") % 200 != 0).select(  # ~0.5% missing
        id=pl.when(pl.col("h") % 2 == 0).then("charge").otherwise("payment_intent"),
        amount=pl.when(pl.col("h") % 100_003 == 1).then(pl.col("amount") + 1).otherwise("amount"),  # a few mismatches
        currency="currency",
    ).cast(PAYMENT_ROWS_SCHEMA)  # type: ignore[arg-type]
    bank = payouts.filter(~pl.col("id").is_in(["po_3", "po_17"])).select(  # two missing
        id=pl.concat_str(pl.lit("bank_"), "id"), amount="amount", currency="currency",
        date=pl.col("arrival_date") + pl.duration(days=pl.col("amount") % 3),
        reference=pl.concat_str(pl.lit("STRIPE PAYOUT "), "trace_id"),
    )
    extra = pl.DataFrame({"id": ["bank_extra"], "amount": [123_456], "currency": ["USD"], "date": [FIRST + timedelta(days=5)],
                          "reference": ["STRIPE TRANSFER"]})  # fmt: skip
    bank = pl.concat([bank.cast(BANK_SCHEMA), extra.cast(BANK_SCHEMA)])  # type: ignore[arg-type]
    return {"payouts": payouts, "transactions": pl.concat([tx, own]), "payments": payments, "bank": bank}


def child(folder: Path, days: int) -> None:
    """Read the frames, then three timed calls; peak RSS growth over them from `ru_maxrss`."""
    # Written compressed, so reading them decompresses into memory: no page of theirs is mapped
    # from the file and first touched (and counted) during the calls.
    frames = {name: pl.read_ipc(folder / f"{name}.arrow") for name in FRAMES}
    last = FIRST + timedelta(days=days - 1)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs, result = [], None
    for _ in range(3):
        result = None
        gc.collect()
        t0 = time.perf_counter()
        result = reconcile_payouts(frames["payouts"], frames["transactions"], frames["payments"], frames["bank"],
                                   first=FIRST, last=last, as_of=last + timedelta(days=10))  # fmt: skip
        runs.append(time.perf_counter() - t0)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result is not None
    print(json.dumps({"seconds": round(min(runs), 3), "runs": [round(r, 3) for r in runs], "peak_mib": round(peak, 1),
                      "input_mib": round(sum(f.estimated_size() for f in frames.values()) / 2**20, 1),
                      "status": result.status, "counts": result.counts()}))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--charges-per-day", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child), args.days)
        return 0

    t0 = time.perf_counter()
    frames = generate(args.days, args.charges_per_day, args.seed)
    generate_seconds = time.perf_counter() - t0
    sizes = {"payouts": frames["payouts"].height, "transactions": frames["transactions"].height}
    with tempfile.TemporaryDirectory(prefix="bench_payouts_") as folder:
        for name, frame in frames.items():
            frame.write_ipc(Path(folder) / f"{name}.arrow", compression="lz4")
        del frames
        done = subprocess.run([sys.executable, __file__, "--child", folder, "--days", str(args.days)], capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    measured = json.loads(done.stdout)
    out = {"days": args.days, **sizes, "seconds": measured["seconds"], "peak_mib": measured["peak_mib"]}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{args.days} days, {sizes['payouts']} payouts, {sizes['transactions']:,} balance transactions "
          f"(generated in {generate_seconds:.1f}s; inputs {measured['input_mib']} MiB; {pl.thread_pool_size()} Polars threads)")  # fmt: skip
    for key, target in (("seconds", "< 2"), ("peak_mib", "< 1024")):
        mark = "ok" if measured[key] < TARGETS[key] else "MISSED"
        print(f"{key:<10}{measured[key]:>10}  target {target}: {mark}")
    print(f"runs {measured['runs']}; status {measured['status']}; counts {measured['counts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
