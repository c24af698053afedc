"""Opening a DuckDB file the stores write to. DuckDB allows one writer process per file: writers
in this process take turns per file, and connecting retries with backoff while another process
holds the file's lock."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def open_file(
    path: Path, *, lock_timeout: float, error: type[Exception], what: str
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to `path` (its folder created), closed on exit; this process's other writers
    of the file wait meanwhile. A file another process keeps locked past `lock_timeout` seconds,
    or any other failure to open it, raises `error("cannot open <what> <path>: ...")`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        deadline, delay = time.monotonic() + lock_timeout, 0.05
        while True:
            try:
                conn = duckdb.connect(str(path))
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise error(f"cannot open {what} {path}: {exc}") from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            yield conn
        finally:
            conn.close()


def _lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path.resolve()), threading.Lock())
