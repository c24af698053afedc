"""The Stripe API as the source of charges and payouts, through one paced `StripeClient`."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl
import stripe

from recon_dagster.core.payout_result import PayoutResult
from recon_dagster.settings.accounts import Accounts
from recon_dagster.sources import stripe_charges, stripe_connect, stripe_payouts
from recon_dagster.sources.stripe_disputes import with_disputes
from recon_dagster.sources.stripe_payouts import ConnectRole
from recon_dagster.sources.stripe_source import SourceVerdict


@dataclass(frozen=True)
class ConnectSide:
    """Whose sales an account's charges are under Stripe Connect (`stripe_connect`): the
    platform's own (`destination` None: destination charges left out) or a connected account's
    (`destination`: payments made by transfers left out, and the platform's charges to it read
    through `platform`)."""

    platform: stripe.StripeClient
    destination: str | None = None

    @property
    def role(self) -> ConnectRole:
        return "platform" if self.destination is None else "connected"

    def skip(self, charge: object) -> bool:
        """A charge listed on this account that is not its own sale."""
        if self.destination is None:
            return stripe_connect.is_destination_charge(charge)
        return stripe_connect.is_transfer_payment(charge)

    def elsewhere(self, charge: object) -> bool:
        """A platform charge that is not this connected account's sale."""
        return stripe_connect.destination_of(charge) != self.destination


def connect_side(
    accounts: Accounts,
    account: str,
    client: stripe.StripeClient,
    platform: Callable[[], stripe.StripeClient],
) -> ConnectSide | None:
    """How `account` (called through `client`) is read under Connect; `platform` gives the
    platform's client, asked for only for a connected account. None without Connect."""
    if accounts.is_platform(account):
        return ConnectSide(client)
    if accounts.connected(account):
        return ConnectSide(platform(), destination=account)
    return None


@dataclass(frozen=True)
class StripeApi:
    """`ChargeSource` and `PayoutSource` over the Stripe API. `slices`: how a window's listing is
    cut (None: automatically, see `stripe_charges.fetch_charges`); `label`: what reports say the
    source was."""

    client: stripe.StripeClient
    slices: int | None = None
    label: str = "api"
    connect: ConnectSide | None = None

    @property
    def _skip(self) -> Callable[[object], bool] | None:
        """What this account lists that is not its own sale (Connect), else nothing."""
        return self.connect.skip if self.connect is not None else None

    @property
    def _destination(self) -> ConnectSide | None:
        """The Connect side of a connected account (whose destination charges the platform
        holds), else None."""
        side = self.connect
        return side if side is not None and side.destination is not None else None

    def fetch_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        own = with_disputes(self.client, self._own(start, end), start)
        side = self._destination
        if side is None:
            return own
        # A destination charge's dispute is the platform's: looked up there.
        return stripe_charges.as_listing(
            own, with_disputes(side.platform, self._theirs(side, start, end), start)
        )

    def list_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        own, side = self._own(start, end), self._destination
        return (
            own if side is None else stripe_charges.as_listing(own, self._theirs(side, start, end))
        )

    def _own(self, start: datetime, end: datetime) -> pl.DataFrame:
        """The charges listed on this account that are its own sales."""
        return stripe_charges.fetch_charges(
            self.client, start, end, slices=self.slices, skip=self._skip
        )

    @staticmethod
    def _theirs(side: ConnectSide, start: datetime, end: datetime) -> pl.DataFrame:
        """A connected account's destination charges, which the platform holds."""
        assert side.destination is not None
        return stripe_connect.destination_charges(side.platform, side.destination, start, end)

    def retrieve_charges(self, ids: list[str]) -> tuple[pl.DataFrame, list[str]]:
        found, missing = stripe_charges.retrieve_charges(self.client, ids, skip=self._skip)
        side = self._destination
        if side is None or not missing:
            return found, missing
        # A connected account's sale may be a destination charge, which the platform holds.
        theirs, missing = stripe_charges.retrieve_charges(
            side.platform, missing, skip=side.elsewhere
        )
        return pl.concat([found, theirs]), missing

    def charges_of_intents(self, intents: list[str]) -> pl.DataFrame:
        own = stripe_charges.charges_of_intents(self.client, intents, skip=self._skip)
        side = self._destination
        if side is None:
            return own
        # A destination charge's PaymentIntent is the platform's.
        theirs = stripe_charges.charges_of_intents(side.platform, intents, skip=side.elsewhere)
        return pl.concat([own, theirs])

    def verdict(self, charges: pl.DataFrame, day_end: datetime, seed: str) -> SourceVerdict:
        return SourceVerdict(self.label)  # the API is the reference: nothing to doubt

    def fetch_payouts(self, first: date, last: date) -> pl.DataFrame:
        return stripe_payouts.fetch_payouts(self.client, first, last)

    def fetch_payout_transactions(self, payout_ids: list[str]) -> pl.DataFrame:
        role = self.connect.role if self.connect is not None else None
        return stripe_payouts.fetch_payout_transactions(self.client, payout_ids, connect=role)

    def retrieve_payouts(self, ids: list[str]) -> tuple[pl.DataFrame, list[str]]:
        return stripe_payouts.retrieve_payouts(self.client, ids)

    def payout_verdict(self, result: PayoutResult) -> SourceVerdict:
        return SourceVerdict(self.label)
