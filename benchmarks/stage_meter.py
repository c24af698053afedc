"""Seconds and peak RSS per stage of a day's run, measured inside the child that runs it.

Each stage is a set of the product's functions (`STAGES`), wrapped in the child process only:
while one runs, its wall time is added to its stage and a sampler thread (every 5 ms; Polars and
DuckDB release the GIL) keeps the stage's highest RSS. The run's own peak is `ru_maxrss`, which
no sampling can miss; a stage's peak can miss a spike shorter than 5 ms.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import threading
import time
from collections.abc import Callable
from typing import Any

# stage -> "module:attribute" (a function, or Class.method) wrapped where callers look it up.
STAGES: dict[str, tuple[str, ...]] = {
    "read": (
        "recon_dagster.sources.stripe_mirror:_copy",
        "recon_dagster.sources.stripe_api:stripe_charges.fetch_charges",
        "recon_dagster.sources.payments_db.duckdb_file:read_window",
        "recon_dagster.sources.payments_db.postgresql:read_window",
        "recon_dagster.sources.payments_db.mysql:read_window",
        "recon_dagster.sources.payments_db.sqlite_file:read_window",
        "recon_dagster.stores.asset_tables:AssetTables.read",
    ),
    "normalise": (
        "recon_dagster.sources.stripe_mirror:_validate",
        "recon_dagster.sources.payments_db:to_payments_frame",
    ),
    "reconcile": ("recon_dagster.usecases.charges:reconcile",),
    "store": (
        "recon_dagster.stores.asset_tables:AssetTables.write",
        "recon_dagster.stores.report_store:ReportStore.save",
    ),
    "metadata": ("recon_dagster.defs.charges.assets:report_metadata",),
}


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class StageMeter:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self.entry: dict[str, float] = {}  # RSS when the function was first called
        self.active: list[str] = []
        self._stop = threading.Event()

    def install(self) -> None:
        for stage, targets in STAGES.items():
            for target in targets:
                module_name, _, path = target.partition(":")
                owner: Any = importlib.import_module(module_name)
                *parents, name = path.split(".")
                for part in parents:
                    owner = getattr(owner, part)
                setattr(owner, name, self._wrap(stage, getattr(owner, name), path))
        threading.Thread(target=self._sample, daemon=True).start()

    def _wrap(self, stage: str, fn: Callable[..., Any], what: str) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(fn):  # a batch reader: time each batch it makes

            @functools.wraps(fn)
            def batches(*args: Any, **kwargs: Any) -> Any:
                items = fn(*args, **kwargs)
                while True:
                    try:
                        item = self._timed((stage, what), next, items)
                    except StopIteration:
                        return
                    yield item

            return batches

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            return self._timed((stage, what), fn, *args, **kwargs)

        return timed

    def _timed(
        self, names: tuple[str, str], fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Time `fn` under its stage and under its own name (`functions` in the report)."""
        self.active.extend(names)
        rss = _rss_mib()
        for name in names:
            self.entry.setdefault(name, rss)
            self.peak[name] = max(self.peak.get(name, 0.0), rss)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            took, rss = time.perf_counter() - t0, _rss_mib()
            for name in names:
                self.seconds[name] = self.seconds.get(name, 0.0) + took
                self.peak[name] = max(self.peak[name], rss)
                self.active.remove(name)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            rss = _rss_mib()
            for stage in list(self.active):
                if rss > self.peak.get(stage, 0.0):
                    self.peak[stage] = rss

    def report(self) -> str:
        """JSON: each stage's seconds and peak MiB, and under `functions` each function's, with
        the RSS at its first call (`entry_mib`: what the steps before it left)."""
        self._stop.set()

        def figures(name: str) -> dict[str, float]:
            return {"seconds": round(self.seconds[name], 2), "peak_mib": round(self.peak[name])}

        out: dict[str, Any] = {s: figures(s) for s in STAGES if s in self.seconds}
        out["functions"] = {
            n: {**figures(n), "entry_mib": round(self.entry[n])}
            for n in self.seconds
            if n not in STAGES
        }
        return json.dumps(out)
