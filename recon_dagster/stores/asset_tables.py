"""Where the input assets' frames live between steps (`stripe_charges`, `db_payments`,
`stripe_payouts`, `stripe_payout_transactions`): one table per asset, one row per record, in a
DuckDB file or in PostgreSQL (`asset_tables_postgres.py`).

Why not an IO manager: the assets write and read their frames here through a resource and
return `MaterializeResult`s, so nothing depends on Dagster's private `DbIOManager`, and a step
reads exactly the slice of rows it needs. Writing a slice deletes the slice's rows and inserts
the new ones in one transaction: a re-run replaces its days, never duplicates them, and a failed
write leaves the previous rows.
"""

from collections.abc import Collection
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import polars as pl

from recon_dagster.duckdb_connect import read_frame
from recon_dagster.settings import redact_url
from recon_dagster.stores import asset_tables_postgres
from recon_dagster.stores.asset_slice import AssetTablesError, Slice, with_null_columns
from recon_dagster.stores.duckdb_files import open_file

# Slices up to this many rows use the file attached to this process's in-memory database (2-5 ms
# to connect instead of 15-25 ms); larger ones open it as a database of their own, which gives
# their memory back when closed (see `connect_waiting`).
SHARED_ROWS = 100_000


class AssetTables:
    """Frames by table and slice. `url`: `duckdb:///path` or a PostgreSQL URL; `schema` holds the
    tables (`recon_assets`)."""

    def __init__(
        self,
        url: str,
        schema: str = "recon_assets",
        lock_timeout: float = 30.0,
        shared_rows: int = SHARED_ROWS,
    ):
        self.url, self.schema, self.lock_timeout = url, schema, lock_timeout
        self.shared_rows = shared_rows

    def __repr__(self) -> str:
        return f"AssetTables({redact_url(self.url)!r}, schema={self.schema!r})"

    @property
    def on_postgres(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://"))

    def write(self, table: str, frame: pl.DataFrame, rows: Slice) -> None:
        """Replace the slice's rows of `table` with `frame` (empty frames too), in one
        transaction; the table is created, or given the frame's new columns, as needed."""
        if self.on_postgres:
            return asset_tables_postgres.write(self.url, self.schema, table, frame, rows)
        with self._duckdb(shared=frame.height <= self.shared_rows) as conn:
            # Arrow's string views, as Polars holds its strings: the default (large strings)
            # copies every id of the frame first, ~60 MiB more at the peak of a 1M-row write.
            conn.register("data", frame.to_arrow(compat_level=pl.CompatLevel.newest()))
            name = f'"{self.schema}"."{table}"'
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                conn.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM data LIMIT 0")
                # Columns a newer version added (an older one created the table): old rows read
                # null.
                existing = {row[0] for row in conn.execute(f"DESCRIBE {name}").fetchall()}
                for column, kind, *_ in conn.execute("DESCRIBE SELECT * FROM data").fetchall():
                    if column not in existing:
                        conn.execute(f'ALTER TABLE {name} ADD COLUMN "{column}" {kind}')
                conn.execute(f"DELETE FROM {name} WHERE {_where(rows)}", [rows.low, rows.high])
                conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM data")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def read(self, table: str, rows: Slice, skip: Collection[str] = ()) -> pl.DataFrame:
        """The slice's rows of `table`; an error naming the table when it was never written.
        Columns in `skip` (never the slice's own) are not read: they come back as typed nulls,
        which take no memory."""
        if self.on_postgres:
            return asset_tables_postgres.read(self.url, self.schema, table, rows, skip)
        with self._duckdb(shared=True) as conn:
            found = self._read(conn, table, rows, skip, most=self.shared_rows)
        if found is None:  # a large slice: read again where its memory goes back afterwards
            with self._duckdb(shared=False) as conn:
                found = self._read(conn, table, rows, skip, most=None)
        assert found is not None
        frame, schema = found
        return _utc(with_null_columns(frame, schema))

    def _read(
        self, conn: Any, table: str, rows: Slice, skip: Collection[str], most: int | None
    ) -> tuple[pl.DataFrame, pl.Schema] | None:
        """The slice's rows and the table's schema; None when it holds more than `most` rows."""
        name = f'"{self.schema}"."{table}"'
        found = conn.sql(
            "SELECT 1 FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = ? AND table_name = ?",
            params=[self.schema, table],
        ).fetchall()
        if not found:
            raise AssetTablesError(f"{self.schema}.{table} does not exist: materialize {table}")
        bounds = [rows.low, rows.high]
        conn.execute("BEGIN TRANSACTION")  # one snapshot for the count and the rows
        try:
            schema = read_frame(conn.sql(f"SELECT * FROM {name} LIMIT 0")).schema
            counts = ", ".join(f'count("{column}")' for column in schema)
            query = f"SELECT count(*), {counts} FROM {name} WHERE {_where(rows)}"
            height, *filled = conn.execute(query, bounds).fetchall()[0]
            if most is not None and height > most:
                return None
            if height:
                present = [
                    column
                    for column, n in zip(schema, filled, strict=True)
                    if rows.reads(column, n, skip)
                ]
                selected = ", ".join(f'"{column}"' for column in present)
                query = f"SELECT {selected} FROM {name} WHERE {_where(rows)}"
                return read_frame(conn.sql(query, params=bounds)), schema
            return pl.DataFrame(schema=schema), schema
        finally:
            conn.execute("ROLLBACK")  # it wrote nothing

    def _duckdb(self, *, shared: bool) -> AbstractContextManager[Any]:
        path = Path(self.url.removeprefix("duckdb:///")).resolve()
        return open_file(
            path,
            lock_timeout=self.lock_timeout,
            error=AssetTablesError,
            what="asset storage",
            shared=shared,
        )


def _where(rows: Slice) -> str:
    return f'"{rows.column}" >= ? AND "{rows.column}" < ?'


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    """DuckDB hands TIMESTAMPTZ back in the session's zone; the core's schemas say 'UTC'."""
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    )
