"""CPU of the processes users start: a CLI `reconcile` of a day, a day's `dagster asset
materialize`, and loading the code location, each in a fresh process as a shell starts it.

    python benchmarks/bench_startup.py [--runs 5] [--per-day 50] [--against DIR] [--json]

Most of such a process is start-up (importing Dagster and the libraries, building the
definitions), and the test command starts ~170 of them. The data are the demo's (`build_world`:
the local Stripe-compatible server in this process, the payments table and report store on
DuckDB, a DAGSTER_HOME holding the repository's dagster.yaml).

Each figure is the machine's busy CPU (`/proc/stat`, every process: the steps a run forks from
Dagster's forkserver are not this process's children) during one call, in seconds; the median
and the minimum of `--runs` calls. Run it on a quiet machine. `--against DIR` compares with
another checkout (a `git worktree` of an older commit): every call is made twice in a row, once
with this checkout and once with `PYTHONPATH=DIR`, so both meet the same moments of a machine
whose speed drifts by 20% within minutes; `against` holds its figures and `ratio` this
checkout's median over its.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from recon_dagster.testing.deployment import build_world, consecutive_days, materialize_command


def busy_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (user, nice, system, irq, softirq,
    steal). The `cpu` line's guest and guest_nice fields come after those and are already counted
    in user and nice, so they are left out."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields) - idle - iowait) / 100  # USER_HZ is 100 on Linux


def measured(command: list[str], env: dict[str, str], cwd: Path) -> float:
    before = busy_seconds()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    after = busy_seconds()
    # reconcile exits 1 when it finds discrepancies (the demo's days have some)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{command[:3]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return after - before


def summary(runs: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "cpu_seconds_median": round(statistics.median(seconds), 3),
            "cpu_seconds_min": round(min(seconds), 3),
        }
        for name, seconds in runs.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--per-day", type=int, default=50, help="charges a day (default 50)")
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)

    here = str(Path(__file__).resolve().parents[1])
    checkouts = {"this": here} | ({"against": str(args.against.resolve())} if args.against else {})
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        root = Path(tmp)
        [day] = consecutive_days(1)
        world = build_world(root, [day], per_day=args.per_day)
        try:
            cli = str(Path(sys.executable).with_name("recon-dagster"))
            commands = {
                "cli_reconcile": [cli, "reconcile", "--start", day.isoformat(), "--json"],
                "dagster_asset_materialize": materialize_command(day.isoformat()),
                "load_code_location": [
                    sys.executable,
                    "-c",
                    "import recon_dagster.definitions as d; d.defs",
                ],
            }
            runs = {c: {name: [] for name in commands} for c in checkouts}
            for _ in range(args.runs):  # every call of each checkout in turn
                for name, command in commands.items():
                    for checkout, path in checkouts.items():
                        env = {**world.env, "PYTHONPATH": path}
                        runs[checkout][name].append(measured(command, env, root))
        finally:
            world.stop()
    figures = summary(runs["this"])
    out: dict[str, object] = {"runs": args.runs, "per_day": args.per_day, **figures}
    if not args.json:
        report(figures.items(), "")
    if args.against:
        against = summary(runs["against"])
        out["against"] = {"checkout": checkouts["against"], **against}
        out["ratio"] = {
            name: round(fig["cpu_seconds_median"] / against[name]["cpu_seconds_median"], 3)
            for name, fig in figures.items()
        }
        if not args.json:
            report(against.items(), f" (against {args.against})")
    print(json.dumps(out))
    return 0


def report(figures: Iterable[tuple[str, dict[str, float]]], suffix: str) -> None:
    for name, fig in figures:
        print(
            f"{name}{suffix}: {fig['cpu_seconds_median']:.2f} s of CPU (median), "
            f"{fig['cpu_seconds_min']:.2f} s (min)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
