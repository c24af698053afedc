"""Polars' allocator in the processes that run steps: freed memory goes back to the system at
once (why and at what cost: `recon_dagster.defs.forkserver_start`). Here because only the
settings touch the environment."""

import os

# jemalloc reads its options from this variable when Polars first loads in a process.
VARIABLE = "_RJEM_MALLOC_CONF"
STEP_OPTIONS = "dirty_decay_ms:0"


def free_memory_at_once() -> None:
    """Ask the allocator of every process started from here, once it loads Polars, to purge freed
    pages at once. Polars' own import sets the variable (`dirty_decay_ms:500,muzzy_decay_ms:1000`,
    then what was there), so the option is appended: jemalloc takes the last of each."""
    options = os.environ.get(VARIABLE)
    os.environ[VARIABLE] = f"{options},{STEP_OPTIONS}" if options else STEP_OPTIONS
