"""Connecting to a DuckDB file another process may hold: DuckDB allows one writer process per
file and refuses others at once (even read-only ones while a writer holds it), so connecting
waits, with backoff, for the other process to let go."""

import time
from pathlib import Path

import duckdb

LOCK_TIMEOUT = 30.0  # seconds: longer than any one write of ours keeps a file


def connect_waiting(
    path: Path, *, read_only: bool = False, lock_timeout: float = LOCK_TIMEOUT
) -> duckdb.DuckDBPyConnection:
    """A connection to `path`; while another process holds its lock, retried for up to
    `lock_timeout` seconds. Raises DuckDB's own error when that runs out or on any other failure."""
    deadline, delay = time.monotonic() + lock_timeout, 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
