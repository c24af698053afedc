"""Is a day read from the Stripe mirror true? A mirror is only as current as its last sync, and
only as right as what it copied: the day must end well before the newest sync, and a sample of
its charges must agree with the API."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import polars as pl

from recon_dagster.sources.stripe_mirror import SyncStatus

# What a mirror row must agree on with the API's charge, and with the API's payout.
COMPARED = (
    "amount",
    "amount_captured",
    "amount_refunded",
    "currency",
    "status",
    "captured",
    "refunded",
    "disputed",
)
PAYOUT_COMPARED = ("amount", "currency", "arrival_date", "status", "automatic")


def catch_up_note(
    status: SyncStatus, day_end: datetime, min_lag: timedelta, what: str = "charges"
) -> str | None:
    """None when the mirror's newest sync is at least `min_lag` past `day_end`; else what to say.
    Charges created near the sync time may not be copied yet, hence the lag."""
    caught_up_to = status.synced_at - min_lag if status.synced_at is not None else None
    if caught_up_to is not None and day_end <= caught_up_to:
        return None
    newest = status.synced_at.isoformat() if status.synced_at is not None else "never"
    return (
        f"the Stripe mirror has not caught up to {day_end.isoformat()}: its newest sync is "
        f"{newest} "
        f"(RECON_MIRROR_MIN_LAG_MINUTES {int(min_lag.total_seconds() // 60)}); {what} of the day "
        "may be missing, re-run the day once it has"
    )


def sample_ids(charges: pl.DataFrame, n: int, seed: str) -> list[str]:
    """Up to `n` ids of the day's valid charges (or of any frame without `invalid_reason`), drawn at
    random (seeded by `seed`, so a re-run of the day checks the same rows)."""
    valid = (
        charges.filter(pl.col("invalid_reason").is_null())
        if "invalid_reason" in charges.columns
        else charges
    )
    ids = sorted(valid.get_column("id").drop_nulls().to_list())
    return ids if len(ids) <= n else random.Random(seed).sample(ids, n)


def disagreements(
    mirror_rows: pl.DataFrame,
    api_rows: pl.DataFrame,
    asked: list[str],
    compared: tuple[str, ...] = COMPARED,
) -> list[str]:
    """Ids whose mirror row differs from the API's object in any of `compared`, or that the API
    does not know at all."""
    api = api_rows.select("id", *compared)
    joined = (
        mirror_rows.filter(pl.col("id").is_in(asked))
        .select("id", *compared)
        .join(api, on="id", how="left", suffix="_api")
    )
    differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_api")) for c in compared])
    return sorted(
        set(joined.filter(differs).get_column("id").to_list())
        | (set(asked) - set(api.get_column("id").to_list()))
    )
