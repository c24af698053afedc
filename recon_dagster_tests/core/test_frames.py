"""`conform`: frames enter the core in its schemas, or are refused."""

from __future__ import annotations

import polars as pl
import pytest

from recon_dagster.core.frames import CHARGES_SCHEMA, conform
from recon_dagster_tests.support.core_builders import charge, charges


def test_a_frame_already_in_the_schema_reads_a_null_disputed_flag_as_not_disputed():
    frame = charges(charge("ch_1", 1000)).with_columns(disputed=pl.lit(None, pl.Boolean))
    assert frame.schema == CHARGES_SCHEMA

    assert conform(frame, CHARGES_SCHEMA, "charges").get_column("disputed").to_list() == [False]


def test_columns_in_another_order_are_put_in_the_schemas_order():
    frame = charges(charge("ch_1", 1000))
    shuffled = frame.select(reversed(frame.columns))

    assert conform(shuffled, CHARGES_SCHEMA, "charges").equals(frame)


def test_a_column_of_another_type_is_refused_with_its_name():
    frame = charges(charge("ch_1", 1000)).with_columns(amount=pl.col("amount").cast(pl.Float64))

    with pytest.raises(ValueError, match="amount is Float64, expected Int64"):
        conform(frame, CHARGES_SCHEMA, "charges")
