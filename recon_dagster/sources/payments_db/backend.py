"""What each database module of `payments_db` provides (`postgresql`, `mysql`, `sqlite_file`,
`duckdb_file`): the one shape `payments_db` reads and writes through, checked by the type
checker against each module."""

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

import polars as pl

from recon_dagster.settings import PaymentsTable
from recon_dagster.sources.payments_db.introspect import TableInfo
from recon_dagster.sources.payments_db.writing import InsertResult, NewPayment

# A `created_at` bound as the column compares it: (">=" or "<", the bound).
WindowBound = tuple[str, datetime]


class Backend(Protocol):
    """One database's reader and writer of a mapped payments table."""

    # The URL schemes this backend serves (`postgresql://`, ...).
    SCHEMES: tuple[str, ...]
    # Whether `read_window` cuts at the exact instants (else the caller cuts wall times).
    EXACT_WINDOW: bool

    def connect(
        self, table: PaymentsTable, *, write: bool = False, brief: bool = False
    ) -> AbstractContextManager[Any]:
        """A connection to the table's database, closed on exit. `brief`: for a look-up, a
        one-row insert or a small day, which a file database may serve more cheaply (DuckDB
        attaches the file)."""
        ...

    def inspect(self, conn: Any, table: PaymentsTable) -> TableInfo:
        """The table and its mapped columns' types; `ConfigError` naming what is missing."""
        ...

    def read_window(
        self,
        conn: Any,
        table: PaymentsTable,
        info: TableInfo,
        lo: datetime,
        hi: datetime,
        most: int | None = None,
    ) -> pl.DataFrame | None:
        """The raw rows (`normalise.RAW_SCHEMA`) with created_at in [lo, hi). A backend whose
        brief connections keep a large read's memory (DuckDB) returns None instead when there
        are more than `most`; the others ignore `most`."""
        ...

    def find_ids(
        self,
        conn: Any,
        table: PaymentsTable,
        info: TableInfo,
        ids: list[str],
        window: Sequence[WindowBound],
    ) -> pl.DataFrame:
        """The raw rows whose id is in `ids`, within `window`'s bounds."""
        ...

    def insert(
        self, conn: Any, table: PaymentsTable, row: NewPayment, ids: list[str]
    ) -> InsertResult:
        """`row`, in its own transaction, unless one of `ids` is already in the table."""
        ...
