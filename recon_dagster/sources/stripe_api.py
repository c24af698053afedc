"""The Stripe API as the source of charges and payouts, through one paced `StripeClient`."""

from dataclasses import dataclass
from datetime import date, datetime

import polars as pl
import stripe

from recon_dagster.core.payout_result import PayoutResult
from recon_dagster.sources import stripe_charges, stripe_payouts
from recon_dagster.sources.stripe_disputes import with_disputes
from recon_dagster.sources.stripe_source import SourceVerdict


@dataclass(frozen=True)
class StripeApi:
    """`ChargeSource` and `PayoutSource` over the Stripe API. `slices`: how a window's listing is
    cut (None: automatically, see `stripe_charges.fetch_charges`); `label`: what reports say the
    source was."""

    client: stripe.StripeClient
    slices: int | None = None
    label: str = "api"

    def fetch_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        return with_disputes(self.client, self.list_charges(start, end), start)

    def list_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        return stripe_charges.fetch_charges(self.client, start, end, slices=self.slices)

    def retrieve_charges(self, ids: list[str]) -> tuple[pl.DataFrame, list[str]]:
        return stripe_charges.retrieve_charges(self.client, ids)

    def charges_of_intents(self, intents: list[str]) -> pl.DataFrame:
        return stripe_charges.charges_of_intents(self.client, intents)

    def verdict(self, charges: pl.DataFrame, day_end: datetime, seed: str) -> SourceVerdict:
        return SourceVerdict(self.label)  # the API is the reference: nothing to doubt

    def fetch_payouts(self, first: date, last: date) -> pl.DataFrame:
        return stripe_payouts.fetch_payouts(self.client, first, last)

    def fetch_payout_transactions(self, payout_ids: list[str]) -> pl.DataFrame:
        return stripe_payouts.fetch_payout_transactions(self.client, payout_ids)

    def retrieve_payouts(self, ids: list[str]) -> tuple[pl.DataFrame, list[str]]:
        return stripe_payouts.retrieve_payouts(self.client, ids)

    def payout_verdict(self, result: PayoutResult) -> SourceVerdict:
        return SourceVerdict(self.label)
