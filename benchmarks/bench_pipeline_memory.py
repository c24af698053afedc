"""Peak memory of one day's pipeline (the three assets and the check) for N charges.

    python benchmarks/bench_pipeline_memory.py [--charges 1000000] [--database
    duckdb|postgresql|mysql|sqlite] [--executor in_process|multiprocess] [--json]

The charges are served by the local Stripe-compatible server in a separate process (its memory is
not counted); the payments table, with ~1% discrepancies (and an index on created_at on the servers
and SQLite), is a DuckDB file (default), a SQLite file (created_at as text, as Django and Rails keep
it), or a throwaway database on the PostgreSQL (`--postgres-url`) or MySQL/MariaDB (`--mysql-url`)
server. The pipeline runs through Dagster (`materialize` of the daily job's assets) in a fresh child
process, whose peak RSS (`ru_maxrss` of the waited-for child) and wall time are printed. With
`--executor multiprocess` each step runs in a process of its own, as scheduled and UI runs do:
the peak is then the largest process's, and `stages.steps` gives each step's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb
import polars as pl
from daily_job_child import run_daily_job

DAY = date(2024, 6, 3)
KEY = "sk_test_bench_memory"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_data(
    root: Path, n: int, database: str, server_url: str
) -> tuple[Path, str, Callable[[], None]]:
    """Charges as JSON lines (only the fields our source reads, as Stripe names them) and a
    table."""
    start = int(datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC).timestamp())
    ids = [f"ch_bench{i:09d}" for i in range(n)]
    created = [start + (i * 86_399) // n for i in range(n)]
    amounts = [500 + (i * 7919) % 20_000 for i in range(n)]
    charges_path = root / "charges.jsonl"
    with charges_path.open("w") as f:
        for cid, ts, amount in zip(ids, created, amounts, strict=True):
            f.write(
                f'{{"id":"{cid}","object":"charge","amount":{amount},"amount_captured":{amount},"amount_refunded":0,'
                f'"currency":"usd","status":"succeeded","paid":true,"captured":true,"refunded":false,'
                f'"created":{ts},"payment_intent":"pi_{cid[3:]}","customer":"cus_{cid[-6:]}","livemode":false}}\n'
            )
    rows = pl.DataFrame({"stripe_charge_id": ids, "amount": amounts, "created_at": created})
    rows = rows.with_row_index("i").filter(pl.col("i") % 100 != 0)  # 1% missing in the database
    rows = rows.with_columns(
        amount=pl.when(pl.col("i") % 100 == 1)
        .then(pl.col("amount") + 100)
        .otherwise(pl.col("amount")),
        currency=pl.lit("USD"),
        status=pl.lit("succeeded"),
        created_at=pl.from_epoch(pl.col("created_at") + 2, time_unit="s").dt.replace_time_zone(
            "UTC"
        ),
    ).drop("i")
    url, drop = write_table(root, rows, database, server_url)
    return charges_path, url, drop


def write_table(
    root: Path, rows: pl.DataFrame, database: str, server_url: str
) -> tuple[str, Callable[[], None]]:
    """The payments table in `database`; returns its RECON_DATABASE_URL and a function that drops
    it."""
    if database == "duckdb":
        db_path = root / "app.duckdb"
        arrow = rows.to_arrow()  # noqa: F841 (read by name in the SQL)
        with duckdb.connect(str(db_path)) as con:
            con.execute(
                "create table payments as select * from arrow"
            )  # zone maps serve the window; no index
        return f"duckdb:///{db_path}", lambda: None
    if database == "sqlite":
        db_path = root / "app.db"
        text = rows.with_columns(pl.col("created_at").dt.strftime("%Y-%m-%d %H:%M:%S"))
        with sqlite3.connect(db_path) as con:
            con.execute(
                "create table payments (stripe_charge_id text, amount integer, created_at "
                "datetime, currency text, status text)"
            )
            con.executemany(
                "insert into payments values (?, ?, ?, ?, ?)",
                text.select(
                    "stripe_charge_id", "amount", "created_at", "currency", "status"
                ).iter_rows(),
            )
            con.execute("create index payments_created_at on payments (created_at)")
        return f"sqlite:///{db_path}", lambda: None
    name = f"bench_memory_{uuid.uuid4().hex[:8]}"
    if database == "postgresql":
        import psycopg
        from psycopg import sql

        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "create table payments (stripe_charge_id text, amount bigint, created_at "
                "timestamptz, currency text, status text)"
            )
            with conn.cursor().copy("copy payments from stdin") as copy:
                for row in rows.select(
                    "stripe_charge_id", "amount", "created_at", "currency", "status"
                ).iter_rows():
                    copy.write_row(row)
            conn.execute("create index payments_created_at on payments (created_at)")

        def drop_pg() -> None:
            with psycopg.connect(server_url, autocommit=True) as conn:
                drop = sql.SQL("drop database if exists {} with (force)")
                conn.execute(drop.format(sql.Identifier(name)))

        return url, drop_pg
    import pymysql

    parts = urlsplit(server_url)
    login = {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password or "",
        "init_command": "SET time_zone = '+00:00'",
        "autocommit": True,
    }
    with pymysql.connect(**login) as conn, conn.cursor() as cur:
        cur.execute(f"create database {name}")
        cur.execute(
            f"create table {name}.payments (stripe_charge_id varchar(32), amount bigint, "
            "created_at timestamp(6) null, "
            "currency char(3), status varchar(20), index (created_at))"
        )
        naive = rows.with_columns(pl.col("created_at").dt.replace_time_zone(None))
        batch = list(
            naive.select(
                "stripe_charge_id", "amount", "created_at", "currency", "status"
            ).iter_rows()
        )
        for i in range(0, len(batch), 10_000):  # PyMySQL turns executemany into multi-row INSERTs
            cur.executemany(
                f"insert into {name}.payments values (%s, %s, %s, %s, %s)", batch[i : i + 10_000]
            )

    def drop_mysql() -> None:
        with pymysql.connect(**login) as conn, conn.cursor() as cur:
            cur.execute(f"drop database if exists {name}")

    return urlunsplit(parts._replace(path=f"/{name}")), drop_mysql


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--charges", type=int, default=1_000_000)
    p.add_argument(
        "--database", choices=("duckdb", "postgresql", "mysql", "sqlite"), default="duckdb"
    )
    p.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306/test")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--memray",
        type=Path,
        help="also run the job under memray, writing its capture here (a second run: the peak "
        "printed is the first, unprofiled one)",
    )
    p.add_argument(
        "--executor",
        choices=("in_process", "multiprocess"),
        default="in_process",
        help="in_process: every step in one process (execute_in_process); multiprocess: the "
        "job's own executor, each step in a process of its own, as scheduled and UI runs do (the "
        "peak is then the largest step's)",
    )
    args = p.parse_args()
    server_url = args.postgres_url if args.database == "postgresql" else args.mysql_url
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        charges_path, db_url, drop = write_data(root, args.charges, args.database, server_url)
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recon_dagster.testing.stripe_server",
                "--data",
                str(charges_path),
                "--port",
                str(port),
                "--api-key",
                KEY,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(600):  # the server loads and pre-serialises the data set first
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/charges/none", timeout=1)
                except urllib.error.HTTPError:
                    break
                except OSError:
                    time.sleep(0.5)
            setup = time.perf_counter() - t0
            env = {
                **os.environ,
                "STRIPE_API_KEY": KEY,
                "STRIPE_API_BASE": f"http://127.0.0.1:{port}",
                "STRIPE_REQUESTS_PER_SECOND": "10000",
                "STRIPE_ENDPOINT_REQUESTS_PER_SECOND": "10000",
                "RECON_DATABASE_URL": db_url,
                "RECON_REPORT_STORE_URL": f"duckdb:///{root / 'recon.duckdb'}",
                "RECON_START_DATE": "2024-06-01",
            }
            # Before the server is waited on: the peak is the job's.
            run = run_daily_job(root, DAY, env, executor=args.executor)
            if args.memray:  # after the measured run: memray's own memory is not in its peak
                run_daily_job(root, DAY, env, memray=args.memray)
        finally:
            server.terminate()
            server.wait()
            drop()
    out = {
        "charges": args.charges,
        "peak_mib": run["peak_mib"],
        "seconds": run["seconds"],
        "database": args.database,
        "store": "duckdb",
        "success": run["success"],
        "executor": args.executor,
        "setup_seconds": round(setup, 1),
        **({"orchestrator_mib": run["orchestrator_mib"]} if "orchestrator_mib" in run else {}),
        "stages": run["stages"],
        "target_mib": 800,
        **({"error": run["error"]} if "error" in run else {}),
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0 if run["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
