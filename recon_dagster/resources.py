"""Dagster resources: thin, configurable handles on the sources, the store and the policy.

Each validates its own values with the same parsers as `settings`, so a wrong value typed into
the launchpad fails with the same message as a wrong environment variable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import ClassVar

import dagster as dg
import polars as pl
from pydantic import field_validator

from recon_dagster.core.payout_result import PayoutResult
from recon_dagster.settings import (
    BankTable,
    ConfigError,
    PaymentsTable,
    parse_identifier,
    parse_match_on,
    parse_percent,
    parse_timezone,
)
from recon_dagster.sources import (
    bank,
    mirror_check,
    payments_db,
    stripe_api,
    stripe_mirror,
    stripe_mirror_payouts,
    stripe_payouts,
)
from recon_dagster.sources.stripe_disputes import with_disputes
from recon_dagster.stores.report_store import ReportStore

PayoutsReader = Callable[[date, date], pl.DataFrame]
TransactionsReader = Callable[[list[str]], pl.DataFrame]


class StripeResource(dg.ConfigurableResource):
    """The Stripe API through the official SDK; the key comes from `EnvVar("STRIPE_API_KEY")`."""

    api_key: str
    api_base: str | None = None
    max_network_retries: int = 4
    # Stripe's budgets, each aimed at 95%: in all (None: by the key's mode, 100 live or 25 test) and
    # per endpoint.
    requests_per_second: float | None = None
    endpoint_requests_per_second: float = 25.0
    timeout_seconds: float = 30.0
    # None: automatic (one request for a small window; a busy day split on demand over 8 workers).
    slices: int | None = None

    def client(self):
        return stripe_api.make_client(
            self.api_key,
            api_base=self.api_base,
            max_network_retries=self.max_network_retries,
            requests_per_second=self.requests_per_second,
            endpoint_requests_per_second=self.endpoint_requests_per_second,
            timeout=self.timeout_seconds,
        )

    def fetch_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        """The window's charges, each disputed one with its dispute (status, reason, amount)."""
        client = self.client()
        return with_disputes(
            client, stripe_api.fetch_charges(client, start, end, slices=self.slices), start
        )

    def list_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        """The window's charges alone (neighbour look-ups need no disputes)."""
        return stripe_api.fetch_charges(self.client(), start, end, slices=self.slices)

    def fetch_intents(self, intents: list[str]) -> pl.DataFrame:
        return stripe_api.charges_of_intents(self.client(), intents)

    def retrieve_charges(self, ids: list[str]) -> tuple[pl.DataFrame, list[str]]:
        return stripe_api.retrieve_charges(self.client(), ids)

    def fetch_payouts(self, first: date, last: date) -> pl.DataFrame:
        """Payouts arriving from `first` to `last` (dates, inclusive)."""
        return stripe_payouts.fetch_payouts(self.client(), first, last)

    def fetch_payout_transactions(self, payout_ids: list[str]) -> pl.DataFrame:
        return stripe_payouts.fetch_payout_transactions(self.client(), payout_ids)

    def retrieve_payouts(self, ids: list[str]) -> tuple[pl.DataFrame, list[str]]:
        return stripe_payouts.retrieve_payouts(self.client(), ids)


class _MappedTable(dg.ConfigurableResource):
    """A table of the team's whose columns are mapped onto ours (payments, bank lines): the unit of
    its amounts and the zone of its timestamps without one, validated like their variables."""

    _prefix: ClassVar[str]  # RECON_PAYMENTS or RECON_BANK: the variables' names
    amount_unit: str = "minor"
    db_timezone: str = "UTC"  # RECON_DB_TIMEZONE

    @field_validator("amount_unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        if value not in ("minor", "major"):
            raise ConfigError(
                f"{cls._prefix}_AMOUNT_UNIT", f"{value!r} is not a unit: expected minor or major"
            )
        return value

    @field_validator("db_timezone")
    @classmethod
    def _db_tz(cls, value: str) -> str:
        return parse_timezone("RECON_DB_TIMEZONE", value)

    def _check_columns(self, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        """Each `<name>_column` is a plain identifier (an `optional` one may be unset); a wrong one
        names its variable, `<prefix>_<NAME>_COLUMN`."""
        for name in (*names, *optional):
            value = getattr(self, f"{name}_column")
            if value or name not in optional:
                parse_identifier(f"{self._prefix}_{name.upper()}_COLUMN", value)


class PaymentsDatabaseResource(_MappedTable):
    """The application's payments table and how its columns map onto a payment."""

    _prefix: ClassVar[str] = "RECON_PAYMENTS"
    url: str
    table: str = "payments"
    id_column: str = "stripe_charge_id"
    amount_column: str = "amount"
    currency_column: str = "currency"
    status_column: str = "status"
    created_at_column: str = "created_at"
    refunded_column: str | None = None
    paid_statuses: list[str] = ["succeeded", "paid", "completed"]

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return parse_identifier("RECON_PAYMENTS_TABLE", value, qualified=True)

    def mapping(self) -> PaymentsTable:
        self._check_columns(
            ("id", "amount", "currency", "status", "created_at"), optional=("refunded",)
        )
        return PaymentsTable(
            url=self.url,
            table=self.table,
            id_column=self.id_column,
            amount_column=self.amount_column,
            amount_unit=self.amount_unit,
            currency_column=self.currency_column,
            status_column=self.status_column,
            created_at_column=self.created_at_column,
            refunded_column=self.refunded_column or None,
            paid_statuses=tuple(self.paid_statuses),
            db_timezone=self.db_timezone,
        )

    def read_window(self, start: datetime, end: datetime) -> pl.DataFrame:
        """The window's rows; a missing table or column raises `ConfigError` naming its variable."""
        return payments_db.read_window(self.mapping(), start, end)

    def find_ids(
        self, ids: list[str], start: datetime | None = None, end: datetime | None = None
    ) -> pl.DataFrame:
        return payments_db.find_ids(self.mapping(), ids, start=start, end=end)


class BankResource(_MappedTable):
    """The bank statement table (RECON_BANK_*); without `table` the payouts' bank step is skipped."""

    _prefix: ClassVar[str] = "RECON_BANK"
    url: str | None = None
    table: str | None = None
    id_column: str = "id"
    amount_column: str = "amount"
    currency_column: str = "currency"
    date_column: str = "booked_on"
    reference_column: str | None = None
    match_days: int = 3

    @field_validator("match_days")
    @classmethod
    def _days(cls, value: int) -> int:
        if value < 0:
            raise ConfigError("RECON_BANK_MATCH_DAYS", f"{value!r} must be zero or more")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.table)

    def mapping(self) -> BankTable:
        self._check_columns(("id", "amount", "currency", "date"), optional=("reference",))
        if not self.url or not self.table:
            raise ConfigError(
                "RECON_BANK_TABLE",
                "is not set: the bank step needs the table of bank statement lines",
            )
        return BankTable(
            url=self.url,
            table=parse_identifier("RECON_BANK_TABLE", self.table, qualified=True),
            id_column=self.id_column,
            amount_column=self.amount_column,
            amount_unit=self.amount_unit,
            currency_column=self.currency_column,
            date_column=self.date_column,
            reference_column=self.reference_column or None,
            match_days=self.match_days,
            db_timezone=self.db_timezone,
        )

    def read_deposits(self, first: date, last: date, timezone: str) -> pl.DataFrame:
        return bank.read_deposits(self.mapping(), first, last, timezone)


class ReportStoreResource(dg.ConfigurableResource):
    """Where reports, line items and the sync audit are kept (DuckDB file or PostgreSQL)."""

    url: str

    def store(self) -> ReportStore:
        return ReportStore(self.url)


class ReconciliationPolicy(dg.ConfigurableResource):
    """The thresholds and choices that decide what counts as a discrepancy."""

    timezone: str = "UTC"
    tolerance_percent: str = "1"
    critical_percent: str = "5"
    include_refunds: bool = True
    timing_margin_hours: float = 24.0
    auto_sync: bool = False  # sync missing payments right after each day's reconciliation
    match_on: str = "auto"  # auto | charge | payment_intent: what the table's id column holds

    @field_validator("match_on")
    @classmethod
    def _match_on(cls, value: str) -> str:
        return parse_match_on("RECON_MATCH_ON", value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return parse_timezone("RECON_TIMEZONE", value)

    @field_validator("tolerance_percent")
    @classmethod
    def _tolerance(cls, value: str) -> str:
        return str(parse_percent("BILLING_RECONCILIATION_TOLERANCE_PERCENT", value))

    @field_validator("critical_percent")
    @classmethod
    def _critical(cls, value: str) -> str:
        return str(parse_percent("RECON_CRITICAL_PERCENT", value))

    @property
    def tolerance(self) -> Decimal:
        return Decimal(self.tolerance_percent)

    @property
    def critical(self) -> Decimal:
        return Decimal(self.critical_percent)

    @property
    def margin(self) -> timedelta:
        return timedelta(hours=self.timing_margin_hours)


class StripeMirrorResource(dg.ConfigurableResource):
    """A Stripe mirror in PostgreSQL as the source of charges (RECON_STRIPE_SOURCE); without `url`
    the API is the source. The URL comes as an `EnvVar` (it may carry a password)."""

    url: str | None = None
    mirror_schema: str = "stripe"  # RECON_STRIPE_MIRROR_SCHEMA
    min_lag_minutes: int = 60  # RECON_MIRROR_MIN_LAG_MINUTES
    spot_check: int = 50  # RECON_MIRROR_SPOT_CHECK; 0 without Stripe API credentials

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def mirror(self) -> stripe_mirror.Mirror:
        if not self.url:
            raise ConfigError("RECON_STRIPE_SOURCE", "is api: there is no Stripe mirror to read")
        return stripe_mirror.detect(self.url, self.mirror_schema)

    def fetch_charges(self, start: datetime, end: datetime) -> pl.DataFrame:
        return stripe_mirror.fetch_charges(self.mirror(), start, end)

    def retrieve_charges(self, ids: list[str]) -> tuple[pl.DataFrame, list[str]]:
        found = stripe_mirror.fetch_by(self.mirror(), "id", list(ids))
        return found, sorted(set(ids) - set(found.get_column("id").to_list()))

    def fetch_intents(self, intents: list[str]) -> pl.DataFrame:
        return stripe_mirror.fetch_by(self.mirror(), "payment_intent", list(intents))

    def status(self) -> stripe_mirror.SyncStatus:
        return stripe_mirror.sync_status(self.mirror())

    def payout_readers(
        self, api_payouts: PayoutsReader, api_transactions: TransactionsReader
    ) -> tuple[PayoutsReader, TransactionsReader, str]:
        """(read payouts, read their balance transactions, source label): from the mirror's tables
        where it keeps them, else through the API readers given."""
        if not self.enabled:
            return api_payouts, api_transactions, "api"
        mirror = self.mirror()
        tables = stripe_mirror_payouts.describe(mirror)
        if (
            tables.payouts is None
        ):  # a mirror of charges only: payouts come from the API, as without a mirror
            return api_payouts, api_transactions, "api (the Stripe mirror keeps no payouts)"
        payouts = lambda a, b: stripe_mirror_payouts.fetch_payouts(mirror, tables, a, b)  # noqa: E731
        if tables.transactions_table:
            return (
                payouts,
                lambda ids: stripe_mirror_payouts.fetch_payout_transactions(mirror, tables, ids),
                f"mirror:{mirror.layout}",
            )
        # stripe-sync-engine keeps no balance transactions: those alone come from the API.
        return (
            payouts,
            api_transactions,
            f"mirror:{mirror.layout} (balance transactions from the API)",
        )

    def payouts_synced_since(
        self, since: datetime
    ) -> tuple[list[tuple[str, date]], datetime | None]:
        """(payout id, arrival date) of the mirror's payouts synced after `since`, and the newest
        sync time."""
        mirror = self.mirror()
        return stripe_mirror_payouts.synced_since(
            mirror, stripe_mirror_payouts.describe(mirror), since
        )

    def payout_mismatches(
        self,
        result: PayoutResult,
        source: str,
        retrieve: Callable[[list[str]], tuple[pl.DataFrame, list[str]]],
    ) -> tuple[str, ...]:
        """The spot check for payouts read from the mirror (`source`, a `payout_readers` label): up
        to RECON_MIRROR_SPOT_CHECK of `result`'s payouts retrieved through the API (`retrieve`) and
        compared; the ids that differ or that the API does not know."""
        if (
            not self.enabled
            or not self.spot_check
            or not source.startswith("mirror:")
            or not result.payouts
        ):
            return ()
        mirror_rows = pl.DataFrame(
            [
                {c: getattr(p, c) for c in ("id", *mirror_check.PAYOUT_COMPARED)}
                for p in result.payouts
            ]
        )
        asked = mirror_check.sample_ids(
            mirror_rows, self.spot_check, f"payouts:{result.first}:{result.last}"
        )
        found, _ = retrieve(asked)
        return tuple(
            mirror_check.disagreements(mirror_rows, found, asked, mirror_check.PAYOUT_COMPARED)
        )

    def payout_catch_up_note(self, last: date, source: str) -> str | None:
        """The catch-up note for payouts read from `source` (a `payout_readers` label) arriving up
        to `last` (a UTC date): its end must be RECON_MIRROR_MIN_LAG_MINUTES behind the mirror's
        newest sync."""
        if not self.enabled or not source.startswith("mirror:"):
            return None
        day_end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        return mirror_check.catch_up_note(
            self.status(), day_end, timedelta(minutes=self.min_lag_minutes), what="payouts"
        )

    def verdict(
        self,
        charges: pl.DataFrame,
        day_end: datetime,
        seed: str,
        retrieve: Callable[[list[str]], tuple[pl.DataFrame, list[str]]],
    ) -> tuple[str, str | None, tuple[str, ...]]:
        """(source label, catch-up note, ids on which the mirror and the API disagree) for a day;
        `retrieve` gets charges by id from the Stripe API."""
        mirror = self.mirror()
        note = mirror_check.catch_up_note(
            stripe_mirror.sync_status(mirror), day_end, timedelta(minutes=self.min_lag_minutes)
        )
        mismatches: tuple[str, ...] = ()
        if self.spot_check:
            asked = mirror_check.sample_ids(charges, self.spot_check, seed)
            found, _ = retrieve(asked) if asked else (charges.clear(), [])
            mismatches = tuple(mirror_check.disagreements(charges, found, asked))
        return f"mirror:{mirror.layout}", note, mismatches
