"""Imported last by the step forkserver (`step_processes.PRELOAD`): what it imported before joins
Python's permanent GC generation, so that no step forked from it walks those objects again in a
collection, nor writes to their pages (which would copy them into the step); then the collector,
turned off by `forkserver_start` for the imports, is turned back on, so every step has it.

Python's documented recipe for a process that forks without exec (`gc.freeze`). Nothing imported
by then is garbage worth collecting: modules, classes and functions live as long as the server.
"""

import gc

gc.freeze()
gc.enable()
