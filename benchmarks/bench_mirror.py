"""A 1M-charge day read from a Stripe mirror in PostgreSQL, through the daily job, in a fresh
process.

    python benchmarks/bench_mirror.py [--days 10] [--per-day 1000000] [--url
    postgresql://postgres@127.0.0.1:5432/postgres] [--json]

Builds a throwaway database holding a Stripe Data Pipeline-layout mirror (`stripe.charges`) of
`days` days of `per-day` charges each (10M rows by default, an index on `created`, `_raw_data`
left null to keep the disk small), and a DuckDB payments table with the middle day's rows (~1%
missing, ~1% another amount). Then one child process materializes that day through the daily job
(`RECON_STRIPE_SOURCE` = the mirror, no spot check: no API here) on a DAGSTER_HOME with the
repository's dagster.yaml. Printed: `seconds` and `peak_mib` of the child, `rows_in_mirror`, and
`api_projected_seconds`, the same day read through the API at Stripe's 25 requests/s per
endpoint × 100 charges per page (2,500 charges/s).
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


def build_payments(path: Path, url: str, day: date) -> None:
    """The day's charges as the application recorded them (DuckDB, read straight from the
    mirror)."""
    start = int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp())
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        rows = cur.execute(
            "SELECT id, amount, created FROM stripe.charges WHERE created >= %s AND created < %s",
            [start, start + 86_400],
        ).fetchall()
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE payments (stripe_charge_id VARCHAR, amount BIGINT, currency VARCHAR, "
            "status VARCHAR, created_at TIMESTAMPTZ)"
        )
        kept = [
            (
                cid,
                amount + (100 if i % 100 == 1 else 0),
                "USD",
                "succeeded",
                datetime.fromtimestamp(created + 2, UTC),
            )
            for i, (cid, amount, created) in enumerate(rows)
            if i % 100 != 0
        ]
        _bulk(con, kept)


def _bulk(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    import polars as pl

    frame = pl.DataFrame(
        rows,
        schema=["stripe_charge_id", "amount", "currency", "status", "created_at"],
        orient="row",
    )
    con.register("frame", frame.to_arrow())
    con.execute("INSERT INTO payments SELECT * FROM frame")
    con.unregister("frame")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--per-day", type=int, default=1_000_000)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
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
            build_payments(root / "app.duckdb", url, day)
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
        "target_seconds": 20,
        "target_mib": 2048,
        **({"error": run["error"]} if "error" in run else {}),
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0 if run["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
