"""Imported first by the step forkserver (`step_processes.PRELOAD`): turns Python's cyclic GC off
while the server imports Dagster and the libraries, which build only long-lived objects;
`forkserver_ready`, imported last, freezes them and turns it back on before any step is forked.
The start of Python's documented recipe for a process that forks without exec (`gc.freeze`).
"""

import gc

gc.disable()
