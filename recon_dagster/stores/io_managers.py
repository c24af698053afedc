"""Where `stripe_charges` and `db_payments` live between steps: DuckDB tables, one row per record.

dagster-duckdb's `DuckDBIOManager` does the partition bookkeeping (delete the partitions' rows,
insert the new ones). Its Polars handler from dagster-duckdb-polars cannot be used as is: it
calls `DuckDBPyConnection.arrow()`, which DuckDB 2 removed, and it skips empty frames, so a day
with no charges would leave no table for the next step to read. This handler is that one, fixed.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from dagster import InputContext, MetadataValue, OutputContext, TableColumn, TableSchema
from dagster._core.storage.db_io_manager import DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBIOManager
from dagster_duckdb.io_manager import DuckDbClient


def partition_expr(column: str, timezone_name: str) -> str:
    """SQL for the asset's partition column: the UTC timestamp as local wall-clock time.

    dagster-duckdb compares partition columns with naive local timestamps ('2024-03-10 00:00:00'),
    so a UTC column must be shifted into the partitions' time zone first.
    """
    return f"timezone('{timezone_name}', {column})"


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    # DuckDB hands TIMESTAMPTZ back as 'Etc/UTC'; the core's schemas say 'UTC'.
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    )


class PolarsDuckDBTypeHandler(DbTypeHandler[pl.DataFrame]):
    """Stores Polars frames in DuckDB (empty ones too) and loads them back with their types."""

    def handle_output(
        self, context: OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection
    ) -> None:
        rows = obj.to_arrow()  # noqa: F841 (read by name in the SQL below)
        table = f"{table_slice.schema}.{table_slice.table}"
        connection.execute(f"create table if not exists {table} as select * from rows limit 0")
        # Columns a newer version added (the table was created by an older one): older rows read
        # null.
        existing = {row[0] for row in connection.execute(f"describe {table}").fetchall()}
        for name, type_, *_ in connection.execute("describe select * from rows").fetchall():
            if name not in existing:
                connection.execute(f'alter table {table} add column "{name}" {type_}')
        connection.execute(f"insert into {table} by name select * from rows")
        context.add_output_metadata(
            {
                "row_count": obj.height,
                "dataframe_columns": MetadataValue.table_schema(
                    TableSchema(
                        columns=[TableColumn(name=n, type=str(t)) for n, t in obj.schema.items()]
                    )
                ),
            }
        )

    def load_input(
        self, context: InputContext, table_slice: TableSlice, connection
    ) -> pl.DataFrame:
        if table_slice.partition_dimensions and len(context.asset_partition_keys) == 0:
            return pl.DataFrame()
        query = DuckDbClient.get_select_statement(table_slice=table_slice)
        return _utc(pl.from_arrow(connection.sql(query).to_arrow_table()))  # type: ignore[arg-type]

    @property
    def supported_types(self):
        return [pl.DataFrame]


class DuckDBPolarsIOManager(DuckDBIOManager):
    """dagster-duckdb's IO manager with the Polars handler above."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [PolarsDuckDBTypeHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pl.DataFrame
