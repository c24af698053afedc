"""Peak memory of one day's pipeline (the three assets and the check) for N charges.

    python benchmarks/bench_pipeline_memory.py [--charges 1000000] [--json]

The charges are served by the local Stripe-compatible server in a separate process (its memory
is not counted); the payments table is a DuckDB file with ~1% discrepancies. The pipeline runs
through Dagster (`materialize` of the daily job's assets) in a fresh child process, whose peak
RSS (`ru_maxrss` of the waited-for child) and wall time are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

DAY = date(2024, 6, 3)
KEY = "sk_test_bench_memory"
CHILD = """
import dagster as dg
from recon_dagster.definitions import build_definitions
from recon_dagster.settings import Settings
defs = build_definitions(Settings.from_env())
job = defs.resolve_job_def("daily_reconciliation")
with dg.DagsterInstance.get() as instance:  # $DAGSTER_HOME with the repository's dagster.yaml
    result = job.execute_in_process(instance=instance, partition_key="{day}")
print("OK" if result.success else "FAILED")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_data(root: Path, n: int) -> tuple[Path, Path]:
    """Charges as JSON lines (only the fields our source reads, as Stripe names them) and a table."""
    start = int(datetime(DAY.year, DAY.month, DAY.day, tzinfo=timezone.utc).timestamp())
    ids = [f"ch_bench{i:09d}" for i in range(n)]
    created = [start + (i * 86_399) // n for i in range(n)]
    amounts = [500 + (i * 7919) % 20_000 for i in range(n)]
    charges_path = root / "charges.jsonl"
    with charges_path.open("w") as f:
        for cid, ts, amount in zip(ids, created, amounts):
            f.write(
                f'{{"id":"{cid}","object":"charge","amount":{amount},"amount_captured":{amount},"amount_refunded":0,'
                f'"currency":"usd","status":"succeeded","paid":true,"captured":true,"refunded":false,'
                f'"created":{ts},"payment_intent":"pi_{cid[3:]}","customer":"cus_{cid[-6:]}","livemode":false}}\n'
            )
    rows = pl.DataFrame({"stripe_charge_id": ids, "amount": amounts, "created_at": created})
    rows = rows.with_row_index("i").filter(pl.col("i") % 100 != 0)  # 1% missing in the database
    rows = rows.with_columns(
        amount=pl.when(pl.col("i") % 100 == 1).then(pl.col("amount") + 100).otherwise(pl.col("amount")),
        currency=pl.lit("USD"),
        status=pl.lit("succeeded"),
        created_at=pl.from_epoch(pl.col("created_at") + 2, time_unit="s").dt.replace_time_zone("UTC"),
    ).drop("i")
    db_path = root / "app.duckdb"
    arrow = rows.to_arrow()  # noqa: F841 (read by name in the SQL)
    with duckdb.connect(str(db_path)) as con:
        con.execute("create table payments as select * from arrow")
    return charges_path, db_path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--charges", type=int, default=1_000_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        charges_path, db_path = write_data(root, args.charges)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "recon_dagster.testing.stripe_server", "--data", str(charges_path),
             "--port", str(port), "--api-key", KEY],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(600):  # the server loads and pre-serialises the data set first
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/charges/none", timeout=1)
                except urllib.error.HTTPError:
                    break
                except OSError:
                    time.sleep(0.5)
            setup = time.perf_counter() - t0
            shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", root / "dagster.yaml")
            env = {**os.environ, "STRIPE_API_KEY": KEY, "STRIPE_API_BASE": f"http://127.0.0.1:{port}",
                   "STRIPE_REQUESTS_PER_SECOND": "10000", "RECON_DATABASE_URL": f"duckdb:///{db_path}",
                   "RECON_REPORT_STORE_URL": f"duckdb:///{root / 'recon.duckdb'}", "RECON_START_DATE": "2024-06-01",
                   "DAGSTER_HOME": str(root)}  # fmt: skip
            t1 = time.perf_counter()
            child = subprocess.run([sys.executable, "-c", CHILD.format(day=DAY.isoformat())], cwd=root, env=env,
                                   capture_output=True, text=True)  # fmt: skip
            seconds = time.perf_counter() - t1
            peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the child, the larger of our children
        finally:
            server.terminate()
            server.wait()
    ok = child.stdout.strip().endswith("OK")
    out = {"charges": args.charges, "peak_mib": round(peak_kib / 1024, 1), "seconds": round(seconds, 2),
           "store": "duckdb", "success": ok, "setup_seconds": round(setup, 1), "target_mib": 2048}  # fmt: skip
    if not ok:
        out["error"] = child.stderr[-2000:]
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
