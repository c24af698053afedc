"""Imported first by the step forkserver (`step_processes.PRELOAD`): turns Python's cyclic GC off
while the server imports Dagster and the libraries, which build only long-lived objects;
`forkserver_ready`, imported last, freezes them and turns it back on before any step is forked.
The start of Python's documented recipe for a process that forks without exec (`gc.freeze`).

It also tells Polars' allocator, in the steps forked from here, to give freed memory back at
once. Polars sets jemalloc to keep freed pages half a second, then to leave them marked free
(still counted in RSS) another second, so a step's peak held what its stages had used in the
last moments as well: a 1M-charge day's report step reached ~870 MiB, ~705 with pages purged
at once (`benchmarks/bench_pipeline_memory.py --executor multiprocess`). Purging costs page
faults: the core's call takes ~30% longer (~0.15 s on that day), the whole run ~5%.
A step imports Polars itself (the server must not: its threads make forking unsafe), so its
allocator starts after the fork and reads the option then (`settings.allocator`).
"""

import gc

from recon_dagster.settings.allocator import free_memory_at_once

gc.disable()
free_memory_at_once()
