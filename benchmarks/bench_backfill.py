"""Backfill a year of days through Dagster, as a user's backfill runs, and time it.

    python benchmarks/bench_backfill.py --days 365 [--per-day 1000] [--json]

The deployment is the embedded default: a fresh DAGSTER_HOME holding the repository's
dagster.yaml (SQLite storage, two runs at a time), `dagster-webserver` and `dagster-daemon run`
on the repository's workspace.yaml as subprocesses, the demo data's Stripe charges served by the
local Stripe-compatible server in this process, the payments table and report store on DuckDB.
The backfill of the three assets over every day is launched the way the UI does it (GraphQL
`launchPartitionBackfill`); the daemon splits it into runs of DAYS_PER_RUN days and runs them.

`seconds` is launch to the backfill's completion as the webserver reports it. `check_results`
counts the days with a `discrepancy_within_tolerance` result, read back through GraphQL; it must
equal `days`. Exit status 1 when it does not, or when the backfill did not succeed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from recon_dagster.defs.charges.checks import CHECK_NAME
from recon_dagster.testing.deployment import Deployment, build_world, consecutive_days

TARGET_SECONDS = 600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=1000, help="charges a day (default 1000)")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="give up after this many seconds"
    )
    parser.add_argument(
        "--root", type=Path, help="work directory (default: a temporary one, removed after)"
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_backfill_") as tmp:
        root = (args.root or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        world = build_world(root, consecutive_days(args.days), per_day=args.per_day)
        setup = time.monotonic() - t0
        say(
            f"{len(world.dataset.charges)} charges over {args.days} days ready in {setup:.1f}s; "
            "starting Dagster"
        )
        deployment = Deployment(world)
        try:
            t1 = time.monotonic()
            deployment.start(timeout=180)
            startup = time.monotonic() - t1
            world.server.clear_requests()
            say(
                f"dagster-webserver and dagster-daemon up in {startup:.1f}s; launching the backfill"
            )
            started = time.monotonic()
            backfill_id = deployment.launch_asset_backfill(
                world.partitions, title=f"bench_backfill {args.days} days"
            )
            state = deployment.wait_backfill(backfill_id, timeout=args.timeout, poll=1.0)
            seconds = time.monotonic() - started
            stripe_requests = world.server.count()
            executions = deployment.check_executions(
                "reconciliation_report", CHECK_NAME, limit=args.days * 4
            )
        finally:
            deployment.stop()
            world.stop()

    runs = state["runs"]
    checked = {e["partition"] for e in executions if e["evaluation"] is not None}
    run_seconds = sorted(
        r["endTime"] - r["startTime"] for r in runs if r["startTime"] and r["endTime"]
    )
    first_start = min((r["startTime"] for r in runs if r["startTime"]), default=None)
    last_end = max((r["endTime"] for r in runs if r["endTime"]), default=None)
    result = {
        "seconds": round(seconds, 1),
        "days": args.days,
        "runs": len(runs),
        "check_results": len(checked),
        "charges": len(world.dataset.charges),
        "status": state["status"],
        "target_seconds": TARGET_SECONDS,
        "failed_runs": sum(r["status"] != "SUCCESS" for r in runs),
        "run_seconds_median": round(run_seconds[len(run_seconds) // 2], 1) if run_seconds else None,
        "run_seconds_max": round(run_seconds[-1], 1) if run_seconds else None,
        "launch_to_first_run_start": round(first_start - state["timestamp"], 1)
        if first_start
        else None,
        "last_run_end_to_completed": round(state["endTimestamp"] - last_end, 1)
        if last_end and state["endTimestamp"]
        else None,
        "stripe_requests": stripe_requests,
        "setup_seconds": round(setup, 1),
        "startup_seconds": round(startup, 1),
    }
    print(json.dumps(result), flush=True)
    ok = state["status"] in ("COMPLETED", "COMPLETED_SUCCESS") and len(checked) == args.days
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
