"""Where Stripe's side of a day comes from, as the use cases see it: the Stripe API
(`stripe_api.StripeApi`) or a Stripe mirror in PostgreSQL (`stripe_mirror_source`). Both give
the same frames, and a verdict on how far those frames can be trusted."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

import polars as pl

from recon_dagster.core.payout_result import PayoutResult


@dataclass(frozen=True)
class SourceVerdict:
    """Where a day was read (`api`, `mirror:<layout>`, ...), whether the source had caught up
    (a note when not), and the ids on which it disagrees with the Stripe API."""

    label: str
    note: str | None = None
    mismatches: tuple[str, ...] = ()


class ChargeSource(Protocol):
    """Stripe charges, in `CHARGES_SCHEMA` frames."""

    @property
    def label(self) -> str:
        """Where the charges are read (`api`, `mirror:<layout>`)."""
        ...

    def fetch_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        """The window's charges, each disputed one with its dispute."""
        ...

    def list_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        """The window's charges; their disputes may be left out (neighbour look-ups)."""
        ...

    def retrieve_charges(self, ids: list[str]) -> tuple[pl.DataFrame, list[str]]:
        """These charges, and the ids the source does not know."""
        ...

    def charges_of_intents(self, intents: list[str]) -> pl.DataFrame:
        """Every charge of these PaymentIntents, whenever created."""
        ...

    def verdict(self, charges: pl.DataFrame, day_end: datetime, seed: str) -> SourceVerdict:
        """How far `charges`, read for a window ending at `day_end`, can be trusted (`seed`
        draws the same spot-checked sample each time the window is read)."""
        ...


class PayoutSource(Protocol):
    """Stripe payouts by arrival date and their balance transactions."""

    @property
    def label(self) -> str:
        """Where the payouts are read."""
        ...

    def fetch_payouts(self, first: date, last: date) -> pl.DataFrame:
        """Payouts arriving from `first` to `last`, as `PAYOUTS_SCHEMA`."""
        ...

    def fetch_payout_transactions(self, payout_ids: list[str]) -> pl.DataFrame:
        """The balance transactions these payouts paid out, as `PAYOUT_TRANSACTIONS_SCHEMA`."""
        ...

    def payout_verdict(self, result: PayoutResult) -> SourceVerdict:
        """How far the payouts behind `result` can be trusted."""
        ...
