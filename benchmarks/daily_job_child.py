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

# The same day through the job's own executor (multiprocess): every step in a process of its own, as
# the daemon's, the schedule's and the UI's runs do. The child only orchestrates; the peak is the
# largest step's. Each step process meters itself (`STEP_SITE`, on PYTHONPATH, installs the meter
# from a multiprocessing after-fork hook) and leaves its figures in `steps/`.
MULTIPROCESS_CHILD = """
import os
import resource
import sys
sys.path.insert(0, {here!r})
os.makedirs("steps", exist_ok=True)
with open(os.path.join("steps", "sitecustomize.py"), "w") as f:
    f.write({site!r}.format(here={here!r}, out=os.path.abspath("steps")))
# Prepended, not replacing: a PYTHONPATH given to the benchmark (another checkout's code, to
# measure it) must reach the forkserver and the steps too, not only this process.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [os.path.abspath("steps"), os.environ.get("PYTHONPATH")])
)
import dagster as dg
from daily_job_target import daily_job
# The step processes import the target from the working directory it was made in.
home = os.getcwd()
os.chdir({here!r})
target = dg.reconstructable(daily_job)
os.chdir(home)
with dg.DagsterInstance.get() as instance:
    result = dg.execute_job(target, instance=instance, tags={{"dagster/partition": "{day}"}})
    ok = result.success
print("ORCHESTRATOR_MIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print("OK" if ok else "FAILED")
"""

STEP_SITE = """
import json, multiprocessing.util, os, resource, sys
sys.path.insert(0, {here!r})

# Installed in each step process as it starts (a multiprocessing after-fork hook runs in every
# process the executor starts, spawned or forked), not in a forkserver that forks the steps: there
# it would import the product's modules before the executor does. A step leaves through os._exit,
# so its figures are written by a multiprocessing finalizer, not atexit.
def _start(_):
    from stage_meter import StageMeter
    meter = StageMeter()
    meter.install()

    def report():
        figures = json.loads(meter.report())
        if len(figures) > 1:  # a step that ran the product's functions, not only `functions: {{}}`
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            with open(os.path.join({out!r}, str(os.getpid()) + ".json"), "w") as f:
                json.dump({{"peak_mib": round(peak), **figures}}, f)

    multiprocessing.util.Finalize(None, report, exitpriority=100)

multiprocessing.util.register_after_fork(sys.modules[__name__], _start)
"""


def run_daily_job(
    root: Path,
    day: date,
    env: dict[str, str],
    memray: Path | None = None,
    executor: str = "in_process",
) -> dict:
    """Materialize `day` in a child process with `env` (plus DAGSTER_HOME=`root`): `seconds`,
    `peak_mib` (the child's peak RSS: call this before waiting on any larger child), `success`,
    and `error` (the end of its stderr) when it failed. With `memray`, the child runs under
    `memray run` (`pip install -e ".[bench]"`), which writes its allocations there: `memray
    flamegraph` / `memray stats` then say where the peak went (memray's own bookkeeping adds to
    the RSS, so the peak is measured without it). `executor="multiprocess"` runs every step in
    its own process (`MULTIPROCESS_CHILD`): `peak_mib` is then the largest process's,
    `orchestrator_mib` the run's own process's, and `stages` holds `steps`, each step process's
    peak with its stages and functions, largest first."""
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", root / "dagster.yaml")
    profile = [] if memray is None else ["-m", "memray", "run", "--native", "-q", "-o", str(memray)]
    t0 = time.perf_counter()
    child = subprocess.run(
        [
            sys.executable,
            *profile,
            "-c",
            (CHILD if executor == "in_process" else MULTIPROCESS_CHILD).format(
                day=day.isoformat(), here=str(Path(__file__).parent), site=STEP_SITE
            ),
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
    steps = [json.loads(p.read_text()) for p in sorted((root / "steps").glob("*.json"))]
    if steps:  # each step process's peak, stages and functions
        stages = {"steps": sorted(steps, key=lambda step: -step["peak_mib"])}
    orchestrator = next(
        (float(x.split()[1]) for x in lines if x.startswith("ORCHESTRATOR_MIB")), None
    )
    peak_mib = peak_kib / 1024
    if steps:  # step processes are the forkserver's children, not counted in RUSAGE_CHILDREN
        peak_mib = max(peak_mib, *(step["peak_mib"] for step in steps))
    return {
        "seconds": round(seconds, 2),
        "peak_mib": round(peak_mib, 1),
        "success": ok,
        "stages": stages,
        **({} if orchestrator is None else {"orchestrator_mib": round(orchestrator, 1)}),
        **({} if ok else {"error": child.stderr[-2000:]}),
    }
