"""Opening a DuckDB file the stores write to. DuckDB allows one writer process per file: writers
in this process take turns per file, and connecting retries with backoff while another process
holds the file's lock."""

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb

from recon_dagster.duckdb_connect import connect_waiting

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def open_file(
    path: Path, *, lock_timeout: float, error: type[Exception], what: str, shared: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to `path` (its folder created), closed on exit; this process's other writers
    of the file wait meanwhile. A file another process keeps locked past `lock_timeout` seconds,
    or any other failure to open it, raises `error("cannot open <what> <path>: ...")`. `shared`:
    see `connect_waiting`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path), ExitStack() as closing:
        try:
            conn = closing.enter_context(
                connect_waiting(path, lock_timeout=lock_timeout, shared=shared)
            )
        except duckdb.Error as exc:
            raise error(f"cannot open {what} {path}: {exc}") from None
        yield conn


def _lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path.resolve()), threading.Lock())
