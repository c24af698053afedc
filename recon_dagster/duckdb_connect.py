"""Connecting to a DuckDB file another process may hold: DuckDB allows one writer process per
file and refuses others at once (even read-only ones while a writer holds it), so connecting
waits, with backoff, for the other process to let go. And reading a query's rows into Polars
batch by batch."""

import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from recon_dagster.core.frames import from_arrow

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


# Rows per Arrow batch when a query's result becomes a Polars frame.
BATCH_ROWS = 1_000_000


def read_frame(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """A query's rows as a Polars frame, converted one Arrow batch at a time: the Arrow copy of a
    whole 10M-row result never sits beside the frame made from it (that doubled the peak)."""
    reader = relation.to_arrow_reader(BATCH_ROWS)
    frames = [from_arrow(pa.Table.from_batches([batch])) for batch in reader]
    if not frames:
        return from_arrow(reader.schema.empty_table())
    return pl.concat(frames, rechunk=False) if len(frames) > 1 else frames[0]
