"""A day read from a Stripe mirror in PostgreSQL, through the daily job, in a fresh process.

    python benchmarks/bench_mirror.py [--day-charges 1000000] [--days N] [--url
    postgresql://postgres@127.0.0.1:5432/postgres] [--json] [--memray capture.bin]

Builds a throwaway database holding a Stripe Data Pipeline-layout mirror (`stripe.charges`) of
`days` days of `day-charges` charges each (by default 10 days of 1M, or 3 days of 10M: at least
10M rows; an index on `created`, `_raw_data` left null to keep the disk small), and a DuckDB
payments table with the middle day's rows (~1% missing, ~1% another amount). Then one child
process materializes that day through the daily job (`RECON_STRIPE_SOURCE` = the mirror, no spot
check: no API here) on a DAGSTER_HOME with the repository's dagster.yaml, every check and the
stored report as in production. Printed: `seconds` and `peak_mib` of the child, `stages` (seconds
and peak RSS of read, normalise, reconcile, store and metadata, `stage_meter.py`),
`rows_in_mirror`, and `api_projected_seconds`, the same day read through the API at Stripe's 25
requests/s per endpoint × 100 charges per page (2,500 charges/s). Targets: 1M a day in < 20 s and
< 2 GiB; 10M in < 120 s and < 8 GiB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb
import psycopg
from daily_job_child import run_daily_job
from psycopg import sql

API_CHARGES_PER_SECOND = 25 * 100


def build_mirror(url: str, first: date, days: int, per_day: int) -> None:
    """`days` × `per_day` charges, spread over each day; built in SQL (fast, no Python rows)."""
    start = int(datetime.combine(first, datetime.min.time(), tzinfo=UTC).timestamp())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA stripe")
        conn.execute(
            "CREATE TABLE stripe.charges (id text PRIMARY KEY, amount bigint, amount_captured "
            "bigint, amount_refunded bigint, "
            "captured boolean, created bigint, currency text, status text, payment_intent text, "
            "disputed boolean, paid boolean, "
            "refunded boolean, customer text, _account_id text, _updated_at timestamptz, _raw_data "
            "jsonb)"
        )
        conn.execute(
            "INSERT INTO stripe.charges SELECT 'ch_m' || lpad(i::text, 9, '0'), 500 + (i * 7919) "
            "%% 20000, 500 + (i * 7919) %% 20000, 0, "
            "true, %s + (i::bigint * 86400 * %s) / %s, 'usd', 'succeeded', 'pi_m' || i, false, "
            "true, false, 'cus_' || (i %% 50000), "
            "'acct_bench', now(), NULL FROM generate_series(0::bigint, %s - 1) AS i",
            [start, days, days * per_day, days * per_day],
        )
        conn.execute("CREATE INDEX ON stripe.charges (created)")
        conn.execute("ANALYZE stripe.charges")


def build_payments(path: Path, first: date, days: int, per_day: int, day: date) -> None:
    """The day's charges as the application recorded them (~1% missing, ~1% another amount), in
    DuckDB: the mirror's own formulas over the day's range of `i`, so no row passes through
    Python."""
    start = int(datetime.combine(first, datetime.min.time(), tzinfo=UTC).timestamp())
    total = days * per_day
    # Charge i is created at start + i * 86400 * days // total: the day's i run from lo to hi.
    offset = (day - first).days
    lo, hi = offset * per_day, (offset + 1) * per_day
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE payments AS SELECT 'ch_m' || lpad(i::VARCHAR, 9, '0') AS "
            "stripe_charge_id, (500 + (i * 7919) % 20000 + CASE WHEN i % 100 = 1 THEN 100 ELSE 0 "
            "END)::BIGINT AS amount, 'USD' AS currency, 'succeeded' AS status, "
            "to_timestamp(? + (i * 86400 * ?) // ? + 2) AS created_at FROM range(?, ?) t(i) "
            "WHERE i % 100 != 0 ORDER BY created_at",
            [start, days, total, lo, hi],
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--days", type=int, help="days in the mirror (default: 10 for 1M a day, at least 3)"
    )
    parser.add_argument("--day-charges", "--per-day", dest="per_day", type=int, default=1_000_000)
    parser.add_argument(
        "--memray",
        type=Path,
        help="also run the job under memray, writing its capture here (a second run, after the "
        "measured one)",
    )
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.days is None:  # a mirror of at least 10M rows, and at least 3 days of them
        args.days = max(3, 10_000_000 // args.per_day)
    first = date(2024, 6, 1)
    day = first + timedelta(days=args.days // 2)
    name = f"bench_mirror_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    server: str = args.url
    url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            t0 = time.perf_counter()
            build_mirror(url, first, args.days, args.per_day)
            build_payments(root / "app.duckdb", first, args.days, args.per_day, day)
            setup = time.perf_counter() - t0
            env = {
                "PATH": "/usr/bin:/bin",
                "RECON_STRIPE_SOURCE": url,
                "RECON_MIRROR_SPOT_CHECK": "0",
                "RECON_DATABASE_URL": f"duckdb:///{root / 'app.duckdb'}",
                "RECON_REPORT_STORE_URL": f"duckdb:///{root / 'recon.duckdb'}",
                "RECON_START_DATE": first.isoformat(),
            }
            run = run_daily_job(root, day, env)
            if args.memray:
                run_daily_job(root, day, env, memray=args.memray)
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))
    out = {
        "rows_in_mirror": args.days * args.per_day,
        "day_charges": args.per_day,
        "seconds": run["seconds"],
        "peak_mib": run["peak_mib"],
        "success": run["success"],
        "api_projected_seconds": round(args.per_day / API_CHARGES_PER_SECOND, 1),
        "setup_seconds": round(setup, 1),
        "stages": run["stages"],
        "target_seconds": 120 if args.per_day >= 10_000_000 else 20,
        "target_mib": 8192 if args.per_day >= 10_000_000 else 2048,
        **({"error": run["error"]} if "error" in run else {}),
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0 if run["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
