"""The step processes' allocator option: appended, so it wins over the one Polars sets."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from recon_dagster.settings import allocator

POLARS_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"


def test_the_option_is_appended_after_the_one_polars_set(monkeypatch):
    monkeypatch.setenv(allocator.VARIABLE, POLARS_DEFAULT)
    allocator.free_memory_at_once()
    assert os.environ[allocator.VARIABLE] == f"{POLARS_DEFAULT},dirty_decay_ms:0"


def test_without_a_value_the_option_stands_alone(monkeypatch):
    monkeypatch.delenv(allocator.VARIABLE, raising=False)
    allocator.free_memory_at_once()
    assert os.environ[allocator.VARIABLE] == "dirty_decay_ms:0"


def _options_seen_by_polars(queue) -> None:
    import polars  # noqa: F401 (its import reads and extends the variable, as a step's does)

    queue.put(os.environ[allocator.VARIABLE])


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(), reason="no forkserver here"
)
def test_a_process_forked_from_the_step_forkserver_purges_freed_memory_at_once():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["recon_dagster.defs.forkserver_start"])
    queue = ctx.Queue()
    process = ctx.Process(target=_options_seen_by_polars, args=(queue,))
    process.start()
    options = queue.get(timeout=60)
    process.join(timeout=60)
    # jemalloc takes the last value of each option.
    assert options.split(",")[-1] == "dirty_decay_ms:0"
