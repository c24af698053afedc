"""How a run's steps get their processes: Dagster's default executor (a process per step, or all
in one with `execution: config: in_process:`), whose steps fork from a server that imported
Dagster and most libraries once (`PRELOAD`), instead of each starting Python and importing them
again.

Measured on a day of the demo (`dagster asset materialize` of its three assets, 2 cores): 11.2 s
(14 s of CPU) with `spawn`, Dagster's default; 8.4 s (9.8 s of CPU) with `forkserver`.
"""

import multiprocessing

import dagster as dg

# Windows has no forkserver: there the steps start as Dagster's default does.
START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"

# What the server imports before it forks a step: all but 0.28 s of the 0.9 s a step spent
# importing (a day's materialize of 50 charges: 9.5 s / 11.5 s of CPU to 8.3 s / 9.5 s). Named,
# since Dagster's forkserver config preloads nothing more than its own executor when
# `preload_modules` is left out (its docs say the job's module; the config reader turns the
# missing list into an empty one). Not Polars, PyArrow or this package (which imports them):
# importing those starts allocator and spill-file threads, and a process with threads is not
# safe to fork (Polars asks for spawn, or a forkserver that has not imported it).
PRELOAD = [
    # First: the imports below run with the cyclic GC off (see the module).
    "recon_dagster.defs.forkserver_start",
    "dagster",
    "dagster_celery",
    "dagster_pagerduty",
    "dagster_slack",
    "duckdb",
    "httpx",
    "psycopg",
    "pymysql",
    "requests",
    "sqlalchemy",
    "stripe",
    # Last: freezes what the ones above built and turns the GC back on (see the module).
    "recon_dagster.defs.forkserver_ready",
]
FORKSERVER = {"forkserver": {"preload_modules": PRELOAD}}

# Dagster's own executor and config schema, with another default: a run config that names the
# executor (`multiprocess:` with `max_concurrent`, `start_method`, or `in_process:`) replaces it.
step_executor = dg.multi_or_in_process_executor.configured(
    lambda config: config,
    config_schema=dg.Field(
        dg.multi_or_in_process_executor.config_schema.config_type,
        default_value={
            "multiprocess": {
                "start_method": FORKSERVER if START_METHOD == "forkserver" else {"spawn": {}}
            }
        },
    ),
)
