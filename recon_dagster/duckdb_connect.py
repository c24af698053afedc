"""Connecting to a DuckDB file another process may hold, and reading a query's rows into Polars
batch by batch.

DuckDB allows one writer process per file and refuses others at once (even read-only ones while
a writer holds it), so a connection is opened per operation and connecting waits, with backoff,
for the other process to let go. Opening a file as a database of its own costs 15-25 ms of CPU
(DuckDB fills a new catalog of its built-in functions each time); attaching it to an in-memory
database kept per process costs 2-5 ms, and detaching it releases the file's lock the same way.
"""

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from recon_dagster.core.frames import from_arrow

LOCK_TIMEOUT = 30.0  # seconds: longer than any one write of ours keeps a file


@dataclass
class _Use:
    """How this process has a file open now, and for how many connections: attached to its
    in-memory database as `alias`, or as a database of its own (which DuckDB shares between the
    connections of a process)."""

    shared: bool
    read_only: bool
    alias: str
    users: int = 0


class _Host:
    """This process's in-memory database and the files it has open now."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.open: dict[str, _Use] = {}
        self.count = 0
        self._conn: duckdb.DuckDBPyConnection | None = None

    def admin(self) -> duckdb.DuckDBPyConnection:
        """The connection that attaches and detaches; created on first use, so a process that
        forks its workers (Dagster's forkserver) never forks DuckDB's threads."""
        if self._conn is None:
            # Spilled intermediates go to the system's temporary folder, one per process, not
            # to a `.tmp` in whatever the working directory is.
            spill = Path(tempfile.gettempdir()) / f"recon_dagster_duckdb_{os.getpid()}"
            self._conn = duckdb.connect(":memory:", config={"temp_directory": str(spill)})
        return self._conn


_HOST = _Host()


def _after_fork() -> None:
    # The parent's database, its threads and its lock state do not survive a fork; the child
    # starts its own (the parent's object is left alone, never closed from the child).
    global _HOST
    _HOST = _Host()


os.register_at_fork(after_in_child=_after_fork)


@contextmanager
def connect_waiting(
    path: Path,
    *,
    read_only: bool = False,
    lock_timeout: float = LOCK_TIMEOUT,
    shared: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose default database is the file at `path`, closed on exit; while another
    process holds the file's lock, retried for up to `lock_timeout` seconds. Raises DuckDB's own
    error when that runs out or on any other failure.

    `shared=True` attaches the file to this process's in-memory database: for the stores' small
    transactions. Otherwise the file opens as a database of its own, which gives all its memory
    back when closed: for a day's rows (attached, a 1M-charge day's report step kept ~55 MiB more
    after reading them). This process uses a file one way at a time; the other way waits."""
    host, key = _HOST, str(Path(path).resolve())
    conn = _connect(host, key, read_only, shared, lock_timeout)
    try:
        yield conn
    finally:
        try:
            conn.close()
        finally:  # counted as released even if closing failed, or the file stays attached
            _release(host, key)


def _connect(
    host: _Host, key: str, read_only: bool, shared: bool, lock_timeout: float
) -> duckdb.DuckDBPyConnection:
    deadline, delay = time.monotonic() + lock_timeout, 0.02
    while True:
        with host.guard:
            use = host.open.get(key)
            if use is None or (use.shared, use.read_only) == (shared, read_only):
                try:
                    conn, alias = _open(host, key, use, read_only, shared)
                except duckdb.IOException as exc:
                    if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                        raise
                else:
                    use = host.open.setdefault(key, _Use(shared, read_only, alias))
                    use.users += 1
                    return conn
            elif time.monotonic() >= deadline:
                raise duckdb.IOException(
                    f'Could not set lock on file "{key}": this process has it open '
                    f"{'read-only' if use.read_only else 'for writing'} another way"
                )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _open(
    host: _Host, key: str, use: _Use | None, read_only: bool, shared: bool
) -> tuple[duckdb.DuckDBPyConnection, str]:
    if not shared:
        return duckdb.connect(key, read_only=read_only), ""
    if use is None:
        host.count += 1
        alias = f"recon_file_{host.count}"
        mode = " (READ_ONLY)" if read_only else ""
        host.admin().execute(f"ATTACH '{_literal(key)}' AS \"{alias}\"{mode}")
    else:
        alias = use.alias
    cursor = host.admin().cursor()  # a connection of its own to the in-memory database
    try:
        cursor.execute(f'USE "{alias}"')
    except BaseException:
        cursor.close()
        if use is None:
            host.admin().execute(f'DETACH "{alias}"')
        raise
    return cursor, alias


def _release(host: _Host, key: str) -> None:
    with host.guard:
        use = host.open[key]
        use.users -= 1
        if use.users == 0:
            del host.open[key]
            if use.shared:
                host.admin().execute(f'DETACH "{use.alias}"')


def _literal(text: str) -> str:
    return text.replace("'", "''")


# Rows per Arrow batch when a query's result becomes a Polars frame.
BATCH_ROWS = 1_000_000


def read_frame(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """A query's rows as a Polars frame, converted one Arrow batch at a time: the Arrow copy of a
    whole 10M-row result never sits beside the frame made from it (that doubled the peak)."""
    # Imported here, not with the module: DuckDB's reader is PyArrow's anyway, and the processes
    # that load the code location without reading a frame (code servers, a run's coordinator)
    # are spared importing it (~0.1 s in `python -X importtime`).
    import pyarrow as pa

    reader = relation.to_arrow_reader(BATCH_ROWS)
    frames = [from_arrow(pa.Table.from_batches([batch])) for batch in reader]
    if not frames:
        return from_arrow(reader.schema.empty_table())
    return pl.concat(frames, rechunk=False) if len(frames) > 1 else frames[0]
