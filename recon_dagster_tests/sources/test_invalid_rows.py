"""`mark_first_failure`: the first failing check names a row's column and reason; the reason is
formatted only for rows that failed."""

from __future__ import annotations

import polars as pl

from recon_dagster.sources.invalid_rows import mark_first_failure


def checks() -> list:
    return [
        (pl.col("amount").is_null(), "amount", pl.format("{}: no amount", pl.col("id"))),
        (pl.col("amount") < 0, "amount", pl.format("{}: negative", pl.col("id"))),
        (pl.col("currency") != "USD", "currency", pl.format("{}: {}", pl.col("id"), "currency")),
    ]


def test_the_first_failing_check_names_each_row_and_good_rows_stay_valid():
    frame = pl.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "amount": [None, -1, 5, 5],
            "currency": ["EUR", "EUR", "EUR", "USD"],
        }
    )

    marked = mark_first_failure(frame, checks())

    assert marked.get_column("invalid_column").to_list() == ["amount", "amount", "currency", None]
    assert marked.get_column("invalid_reason").to_list() == [
        "a: no amount",
        "b: negative",
        "c: EUR",
        None,
    ]
    assert marked.drop("invalid_column", "invalid_reason").equals(frame)


def test_a_row_already_marked_keeps_its_reason():
    frame = pl.DataFrame(
        {
            "id": ["a", "b"],
            "amount": [None, 1],
            "currency": ["USD", "USD"],
            "invalid_column": ["id", None],
            "invalid_reason": ["NULL id", None],
        }
    )

    marked = mark_first_failure(frame, checks())

    assert marked.get_column("invalid_reason").to_list() == ["NULL id", None]


def test_no_failing_row_formats_no_reason():
    frame = pl.DataFrame({"id": ["a"], "amount": [1], "currency": ["USD"]})
    # A reason that cannot be computed (no such column) is never evaluated when nothing fails.
    broken = [(pl.col("amount") < 0, "amount", pl.col("no_such_column"))]

    marked = mark_first_failure(frame, broken)

    assert marked.get_column("invalid_reason").to_list() == [None]
