"""How a run's steps get their processes: Dagster's default executor (a process per step, or all
in one with `execution: config: in_process:`), whose steps fork from a server that imported the
code location once, instead of each starting Python and importing Dagster, Polars, DuckDB and
stripe again.

Measured on a day of the demo (`dagster asset materialize` of its three assets, 2 cores): 11.2 s
(14 s of CPU) with `spawn`, Dagster's default; 8.4 s (9.8 s of CPU) with `forkserver`. The server
imports the job's module and runs nothing, so no Polars or DuckDB thread exists when a step forks.
"""

import multiprocessing

import dagster as dg

# Windows has no forkserver: there the steps start as Dagster's default does.
START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"

# Dagster's own executor and config schema, with another default: a run config that names the
# executor (`multiprocess:` with `max_concurrent`, `start_method`, or `in_process:`) replaces it.
step_executor = dg.multi_or_in_process_executor.configured(
    lambda config: config,
    config_schema=dg.Field(
        dg.multi_or_in_process_executor.config_schema.config_type,
        default_value={"multiprocess": {"start_method": {START_METHOD: {}}}},
    ),
)
