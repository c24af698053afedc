"""A Stripe mirror in PostgreSQL as the source of charges and payouts, with what tells whether a
day read there is true: the mirror must have caught up past the day's end, and a sample of what
it holds must agree with the Stripe API (`mirror_check`)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from recon_dagster.core.payout_result import PayoutResult
from recon_dagster.settings import ConfigError
from recon_dagster.sources import mirror_check, stripe_mirror, stripe_mirror_payouts
from recon_dagster.sources.stripe_api import StripeApi
from recon_dagster.sources.stripe_mirror import Mirror
from recon_dagster.sources.stripe_mirror_payouts import PayoutTables
from recon_dagster.sources.stripe_source import PayoutSource, SourceVerdict


@dataclass(frozen=True)
class MirrorCharges:
    """`ChargeSource` over the mirror. `min_lag`: how long after a day's end the mirror must have
    synced (RECON_MIRROR_MIN_LAG_MINUTES); `spot_check`: charges per day compared with `api`
    (RECON_MIRROR_SPOT_CHECK; 0 or no `api`: off)."""

    mirror: Mirror
    min_lag: timedelta
    spot_check: int
    api: StripeApi | None

    @property
    def label(self) -> str:
        return f"mirror:{self.mirror.layout}"

    def fetch_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        return stripe_mirror.fetch_charges(self.mirror, start, end)

    def list_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self.fetch_charges(start, end)  # disputes cost no request here

    def retrieve_charges(self, ids: list[str]) -> tuple[pl.DataFrame, list[str]]:
        found = stripe_mirror.fetch_by(self.mirror, "id", list(ids))
        return found, sorted(set(ids) - set(found.get_column("id").to_list()))

    def charges_of_intents(self, intents: list[str]) -> pl.DataFrame:
        return stripe_mirror.fetch_by(self.mirror, "payment_intent", list(intents))

    def status(self) -> stripe_mirror.SyncStatus:
        return stripe_mirror.sync_status(self.mirror)

    def verdict(self, charges: pl.DataFrame, day_end: datetime, seed: str) -> SourceVerdict:
        note = mirror_check.catch_up_note(self.status(), day_end, self.min_lag)
        mismatches: tuple[str, ...] = ()
        if self.spot_check and self.api is not None:
            asked = mirror_check.sample_ids(charges, self.spot_check, seed)
            found = self.api.retrieve_charges(asked)[0] if asked else charges.clear()
            mismatches = tuple(mirror_check.disagreements(charges, found, asked))
        return SourceVerdict(self.label, note, mismatches)


@dataclass(frozen=True)
class MirrorPayouts:
    """`PayoutSource` over the mirror's `payouts` table; balance transactions from its
    `balance_transactions` table where it keeps one (Stripe Data Pipeline), else from `api`."""

    charges: MirrorCharges
    tables: PayoutTables

    @property
    def label(self) -> str:
        if self.tables.transactions_table:
            return self.charges.label
        return f"{self.charges.label} (balance transactions from the API)"

    def fetch_payouts(self, first: date, last: date) -> pl.DataFrame:
        return stripe_mirror_payouts.fetch_payouts(self.charges.mirror, self.tables, first, last)

    def fetch_payout_transactions(self, payout_ids: list[str]) -> pl.DataFrame:
        if not self.tables.transactions_table:  # stripe-sync-engine keeps none
            if self.charges.api is None:
                raise ConfigError(
                    "STRIPE_API_KEY",
                    "is not set: the mirror keeps no balance "
                    "transactions, so they are read through the Stripe API",
                )
            return self.charges.api.fetch_payout_transactions(payout_ids)
        mirror = self.charges.mirror
        return stripe_mirror_payouts.fetch_payout_transactions(mirror, self.tables, payout_ids)

    def payout_verdict(self, result: PayoutResult) -> SourceVerdict:
        """The catch-up note (the last arrival date's end, in UTC, against the newest sync) and
        the spot check: up to `spot_check` payouts retrieved through the API and compared."""
        source = self.charges
        day_end = datetime.combine(result.last + timedelta(days=1), time(0), tzinfo=UTC)
        note = mirror_check.catch_up_note(source.status(), day_end, source.min_lag, "payouts")
        mismatches: tuple[str, ...] = ()
        if source.spot_check and source.api is not None and result.payouts:
            compared = ("id", *mirror_check.PAYOUT_COMPARED)
            rows = pl.DataFrame([{c: getattr(p, c) for c in compared} for p in result.payouts])
            seed = f"payouts:{result.first}:{result.last}"
            asked = mirror_check.sample_ids(rows, source.spot_check, seed)
            found, _ = source.api.retrieve_payouts(asked)
            mismatches = tuple(
                mirror_check.disagreements(rows, found, asked, mirror_check.PAYOUT_COMPARED)
            )
        return SourceVerdict(self.label, note, mismatches)


def payout_source(charges: MirrorCharges) -> PayoutSource:
    """Where payouts are read when charges come from the mirror: its tables when it keeps them,
    else the API."""
    tables = stripe_mirror_payouts.describe(charges.mirror)
    if tables.payouts is not None:
        return MirrorPayouts(charges, tables)
    if charges.api is None:  # a mirror of charges only: payouts come from the API
        raise ConfigError("STRIPE_API_KEY", "is not set: the Stripe mirror keeps no payouts")
    return StripeApi(charges.api.client, label="api (the Stripe mirror keeps no payouts)")
