"""One day through the daily job, in a fresh process, on a DAGSTER_HOME built from the repository's
dagster.yaml: the run that bench_mirror.py and bench_pipeline_memory.py time and weigh."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

CHILD = """
import sys
sys.path.insert(0, {here!r})
from stage_meter import StageMeter
meter = StageMeter()
meter.install()
import dagster as dg
from recon_dagster.definitions import build_defs
from recon_dagster.settings import Settings
job = build_defs(Settings.from_env()).resolve_job_def("daily_reconciliation")
with dg.DagsterInstance.get() as instance:  # $DAGSTER_HOME with the repository's dagster.yaml
    result = job.execute_in_process(instance=instance, partition_key="{day}")
print("STAGES " + meter.report())
print("OK" if result.success else "FAILED")
"""


def run_daily_job(root: Path, day: date, env: dict[str, str], memray: Path | None = None) -> dict:
    """Materialize `day` in a child process with `env` (plus DAGSTER_HOME=`root`): `seconds`,
    `peak_mib` (the child's peak RSS: call this before waiting on any larger child), `success`,
    and `error` (the end of its stderr) when it failed. With `memray`, the child runs under
    `memray run` (`pip install -e ".[bench]"`), which writes its allocations there: `memray
    flamegraph` / `memray stats` then say where the peak went (memray's own bookkeeping adds to
    the RSS, so the peak is measured without it)."""
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", root / "dagster.yaml")
    profile = [] if memray is None else ["-m", "memray", "run", "--native", "-q", "-o", str(memray)]
    t0 = time.perf_counter()
    child = subprocess.run(
        [
            sys.executable,
            *profile,
            "-c",
            CHILD.format(day=day.isoformat(), here=str(Path(__file__).parent)),
        ],
        cwd=root,
        env={**env, "DAGSTER_HOME": str(root)},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    ok = child.stdout.strip().endswith("OK")
    lines = child.stdout.splitlines()
    stages = next((json.loads(x[len("STAGES ") :]) for x in lines if x.startswith("STAGES ")), {})
    return {
        "seconds": round(seconds, 2),
        "peak_mib": round(peak_kib / 1024, 1),
        "success": ok,
        "stages": stages,
        **({} if ok else {"error": child.stderr[-2000:]}),
    }
