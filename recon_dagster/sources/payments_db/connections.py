"""Connection errors that say what and where, never with the password; and the one connectorx read
the SQLite and MySQL backends share."""

from __future__ import annotations

import connectorx
import polars as pl

from recon_dagster.core.frames import from_arrow
from recon_dagster.settings import ConfigError, PaymentsTable, redact_url, scrub

URL_VARIABLE = "RECON_DATABASE_URL"


def cannot_connect(url: str, exc: BaseException, verb: str = "connect to") -> ConfigError:
    return ConfigError(URL_VARIABLE, f"cannot {verb} {redact_url(url)} ({scrub(exc, url)})")


def read_arrow(url: str, query: str, table: PaymentsTable, schema: pl.Schema) -> pl.DataFrame:
    """`query`'s rows read by connectorx straight into Arrow (no Python object per row), its
    columns named and typed as `schema`; a failure names the table's URL without the password."""
    try:
        arrow = connectorx.read_sql(url, query, return_type="arrow")
    except Exception as exc:  # connectorx raises RuntimeError/ValueError with the driver's text
        raise RuntimeError(
            f"reading the payments table from {redact_url(table.url)} failed: "
            f"{scrub(exc, table.url)}"
        ) from None
    frame = from_arrow(arrow)
    return frame.rename(dict(zip(frame.columns, schema, strict=True))).cast(schema)
