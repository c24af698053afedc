"""What the configured table looks like: it exists, every mapped column exists, and each column's
type says how to read it (`TableInfo`). Backends report names and types; the verdicts are here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from recon_dagster.settings import ConfigError, PaymentsTable, redact_url

COLUMN_VARIABLES = {
    "id_column": "RECON_PAYMENTS_ID_COLUMN",
    "amount_column": "RECON_PAYMENTS_AMOUNT_COLUMN",
    "currency_column": "RECON_PAYMENTS_CURRENCY_COLUMN",
    "status_column": "RECON_PAYMENTS_STATUS_COLUMN",
    "created_at_column": "RECON_PAYMENTS_CREATED_AT_COLUMN",
    "refunded_column": "RECON_PAYMENTS_REFUNDED_COLUMN",
    "account_column": "RECON_ACCOUNT_COLUMN",
}
# Type names as PostgreSQL, DuckDB and MySQL/MariaDB's information_schema spell them.
_INTEGER_TYPES = {
    "smallint",
    "integer",
    "bigint",
    "tinyint",
    "mediumint",
    "hugeint",
    "int",
    "int2",
    "int4",
    "int8",
    "utinyint",
    "usmallint",
    "uinteger",
    "ubigint",
    "uhugeint",
}
_FLOAT_TYPES = {"real", "double precision", "double", "float", "float4", "float8"}
_TEXT_PREFIXES = (
    "text",
    "varchar",
    "character",
    "char",
    "bpchar",
    "string",
    "tinytext",
    "mediumtext",
    "longtext",
)


@dataclass(frozen=True)
class TableInfo:
    """What `validate` found: the table and the types of its columns (database names,
    lower-case)."""

    table: str  # schema.table as found
    columns: dict[str, str]  # every column -> its type
    amount_kind: str  # integer | decimal | float | text
    refunded_kind: str | None  # same kinds, None when no refunded column is configured
    created_at_has_timezone: bool  # False: naive wall times, read in RECON_DB_TIMEZONE


def amount_kind(type_name: str) -> str | None:
    """integer | decimal | float | text, or None for a type that cannot hold an amount."""
    if type_name in _INTEGER_TYPES:
        return "integer"
    if type_name.startswith(("numeric", "decimal")):
        return "decimal"
    if type_name in _FLOAT_TYPES:
        return "float"
    if type_name.startswith(_TEXT_PREFIXES):
        return "text"
    return None


def table_info(
    table: PaymentsTable,
    found: tuple[str, dict[str, str]] | None,
    *,
    case_sensitive: bool,
    kind_of_amount: Callable[[str], str | None] = amount_kind,
    timestamp_zone: Callable[[str], bool | None],
) -> TableInfo:
    """Check the mapping against what the database reported (`found`: name and columns, or None
    for no such table). `timestamp_zone(type)` is True for instants, False for wall times, None
    for a type that is not a timestamp."""
    if found is None:
        raise ConfigError(
            "RECON_PAYMENTS_TABLE",
            f"table {table.table} not found in {redact_url(table.url)} "
            "(an unqualified name is looked up in the connection's search path, database or main "
            "schema)",
        )
    name, columns = found
    by_lower = {} if case_sensitive else {c.lower(): c for c in columns}
    types: dict[str, str] = {}
    for attr, variable in COLUMN_VARIABLES.items():
        column = getattr(table, attr)
        if column is None:
            continue
        actual = column if column in columns else by_lower.get(column.lower())
        if actual is None:
            raise ConfigError(
                variable,
                f"column {column!r} not found in table {name} (columns: {', '.join(columns)})",
            )
        types[attr] = columns[actual]

    def kind(attr: str) -> str:
        found_kind = kind_of_amount(types[attr])
        if found_kind is None:
            raise ConfigError(
                COLUMN_VARIABLES[attr],
                f"column {getattr(table, attr)!r} in table {name} has type {types[attr]}: expected "
                "an amount (integer, numeric, float or text)",
            )
        return found_kind

    has_zone = timestamp_zone(types["created_at_column"])
    if has_zone is None:
        raise ConfigError(
            "RECON_PAYMENTS_CREATED_AT_COLUMN",
            f"column {table.created_at_column!r} in table {name} has type "
            f"{types['created_at_column']}: expected a timestamp",
        )
    return TableInfo(
        table=name,
        columns=columns,
        amount_kind=kind("amount_column"),
        refunded_kind=kind("refunded_column") if table.refunded_column else None,
        created_at_has_timezone=has_zone,
    )
