"""Dagster resources: thin, configurable handles on the sources, the stores and the policy.

Defaults and descriptions come from the table of settings (`settings.variables`); each value is
validated with the same parser as its environment variable, so a wrong value typed into the
launchpad fails with the same message, naming the variable.
"""

from datetime import date, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import dagster as dg
import stripe
from pydantic import Field, field_validator

from recon_dagster.close import gl_mapping
from recon_dagster.core.journal import GLMapping
from recon_dagster.core.result import MatchOn
from recon_dagster.settings import (
    AmountUnit,
    BankTable,
    ConfigError,
    PaymentsTable,
    parse_identifier,
)
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT, PLATFORM_ACCOUNT, Accounts
from recon_dagster.settings.variables import BY_NAME, default, parse, secret
from recon_dagster.sources import stripe_client, stripe_mirror
from recon_dagster.sources.bank import BankLines
from recon_dagster.sources.payments_db import PaymentsReader
from recon_dagster.sources.stripe_api import StripeApi, connect_side
from recon_dagster.sources.stripe_mirror_source import MirrorCharges, payout_source
from recon_dagster.sources.stripe_source import ChargeSource, PayoutSource
from recon_dagster.stores.asset_tables import AssetTables
from recon_dagster.stores.report_store import ReportStore


def setting(name: str) -> Any:
    """A resource field defaulting to the variable `name`'s default, described by its doc."""
    value = default(name)
    description = f"{BY_NAME[name].doc} ({name})"
    if isinstance(value, tuple):
        return Field(default_factory=lambda: list(value), description=description)
    return Field(default=value, description=description)


class StripeResource(dg.ConfigurableResource):
    """The Stripe API through the official SDK; the key comes from `EnvVar("STRIPE_API_KEY")`."""

    api_key: str = Field(description=f"{BY_NAME['STRIPE_API_KEY'].doc} (STRIPE_API_KEY)")
    api_base: str | None = setting("STRIPE_API_BASE")
    max_network_retries: int = setting("STRIPE_MAX_NETWORK_RETRIES")
    requests_per_second: float | None = setting("STRIPE_REQUESTS_PER_SECOND")
    endpoint_requests_per_second: float = setting("STRIPE_ENDPOINT_REQUESTS_PER_SECOND")
    timeout_seconds: float = setting("STRIPE_TIMEOUT_SECONDS")
    # None: automatic (one request for a small window; a busy day split on demand over 8 workers).
    slices: int | None = None
    connect: bool = setting("RECON_STRIPE_CONNECT")
    # RECON_STRIPE_ACCOUNTS as written: connected account ids, or name:VARIABLE (no key in it).
    accounts: str = Field(default="", description=BY_NAME["RECON_STRIPE_ACCOUNTS"].doc)
    # The budget every process shares (stripe_budget); None: each process paces alone.
    budget_url: str | None = None

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, value: str) -> str:
        parse("RECON_STRIPE_ACCOUNTS", value)
        return value

    def account_set(self) -> Accounts:
        return Accounts(self.connect, parse("RECON_STRIPE_ACCOUNTS", self.accounts))

    def client(self, account: str = DEFAULT_ACCOUNT) -> stripe.StripeClient:
        """A client for `account`: the connected account (Connect), the entity's own key
        (multi-entity), or the one account of STRIPE_API_KEY (`default`)."""
        accounts = self.account_set()
        key_variable = accounts.key_variable(account)
        return stripe_client.make_client(
            secret(key_variable) if key_variable else self.api_key,
            api_base=self.api_base,
            max_network_retries=self.max_network_retries,
            requests_per_second=self.requests_per_second,
            endpoint_requests_per_second=self.endpoint_requests_per_second,
            timeout=self.timeout_seconds,
            account=account,
            stripe_account=accounts.stripe_account(account),
            budget_url=self.budget_url,
        )

    def api(self, account: str = DEFAULT_ACCOUNT) -> StripeApi:
        client = self.client(account)
        side = connect_side(
            self.account_set(), account, client, lambda: self.client(PLATFORM_ACCOUNT)
        )
        return StripeApi(client, self.slices, connect=side)


class StripeMirrorResource(dg.ConfigurableResource):
    """A Stripe mirror in PostgreSQL as the source (RECON_STRIPE_SOURCE); without `url` the API is
    the source. The URL comes as an `EnvVar` (it may carry a password)."""

    url: str | None = None
    mirror_schema: str = setting("RECON_STRIPE_MIRROR_SCHEMA")
    min_lag_minutes: int = setting("RECON_MIRROR_MIN_LAG_MINUTES")
    # 0 without Stripe API credentials: the spot check compares with the API.
    spot_check: int = setting("RECON_MIRROR_SPOT_CHECK")

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def mirror(self) -> stripe_mirror.Mirror:
        if not self.url:
            raise ConfigError("RECON_STRIPE_SOURCE", "is api: there is no Stripe mirror to read")
        return stripe_mirror.detect(self.url, self.mirror_schema)

    def sources(
        self, stripe: StripeResource, account: str = DEFAULT_ACCOUNT
    ) -> tuple[ChargeSource, PayoutSource]:
        """Where `account`'s charges and payouts are read: the mirror when configured, else the
        API."""
        api = stripe.api(account)
        if not self.enabled:
            return api, api
        if account != DEFAULT_ACCOUNT:
            raise ConfigError(
                "RECON_STRIPE_SOURCE",
                "is a Stripe mirror, which holds one account: with many accounts, read the API",
            )
        charges = MirrorCharges(
            self.mirror(), timedelta(minutes=self.min_lag_minutes), self.spot_check, api
        )
        return charges, payout_source(charges)


class _MappedTable(dg.ConfigurableResource):
    """A table of the team's whose columns are mapped onto ours (payments, bank lines): the unit
    of its amounts and the zone of its timestamps without one, validated like their variables."""

    _prefix: ClassVar[str]  # RECON_PAYMENTS or RECON_BANK: the variables' names
    amount_unit: AmountUnit = setting("RECON_PAYMENTS_AMOUNT_UNIT")
    db_timezone: str = setting("RECON_DB_TIMEZONE")

    @field_validator("amount_unit", mode="before")
    @classmethod
    def _unit(cls, value: str) -> str:
        return parse(f"{cls._prefix}_AMOUNT_UNIT", value)

    @field_validator("db_timezone")
    @classmethod
    def _db_tz(cls, value: str) -> str:
        return parse("RECON_DB_TIMEZONE", value)

    def _check_columns(self, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        """Each `<name>_column` is a plain identifier (an `optional` one may be unset); a wrong
        one names its variable, `<prefix>_<NAME>_COLUMN`."""
        for name in (*names, *optional):
            value = getattr(self, f"{name}_column")
            if value or name not in optional:
                parse_identifier(f"{self._prefix}_{name.upper()}_COLUMN", value)


class PaymentsDatabaseResource(_MappedTable):
    """The application's payments table and how its columns map onto a payment."""

    _prefix: ClassVar[str] = "RECON_PAYMENTS"
    url: str
    table: str = setting("RECON_PAYMENTS_TABLE")
    id_column: str = setting("RECON_PAYMENTS_ID_COLUMN")
    amount_column: str = setting("RECON_PAYMENTS_AMOUNT_COLUMN")
    currency_column: str = setting("RECON_PAYMENTS_CURRENCY_COLUMN")
    status_column: str = setting("RECON_PAYMENTS_STATUS_COLUMN")
    created_at_column: str = setting("RECON_PAYMENTS_CREATED_AT_COLUMN")
    refunded_column: str | None = setting("RECON_PAYMENTS_REFUNDED_COLUMN")
    paid_statuses: list[str] = setting("RECON_PAYMENTS_PAID_STATUSES")
    account_column: str | None = setting("RECON_ACCOUNT_COLUMN")

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return parse_identifier("RECON_PAYMENTS_TABLE", value, qualified=True)

    def mapping(self, account: str | None = None) -> PaymentsTable:
        """The table's mapping; with `account` (and RECON_ACCOUNT_COLUMN), that account's rows."""
        self._check_columns(
            ("id", "amount", "currency", "status", "created_at"), optional=("refunded",)
        )
        if self.account_column:
            parse_identifier("RECON_ACCOUNT_COLUMN", self.account_column)
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
            account_column=self.account_column or None,
            account=account if self.account_column else None,
        )

    def reader(self, account: str | None = None) -> PaymentsReader:
        return PaymentsReader(self.mapping(account))


class BankResource(_MappedTable):
    """The bank statement table (RECON_BANK_*); without `table` the payouts' bank step is
    skipped."""

    _prefix: ClassVar[str] = "RECON_BANK"
    url: str | None = None
    table: str | None = setting("RECON_BANK_TABLE")
    amount_unit: AmountUnit = setting("RECON_BANK_AMOUNT_UNIT")
    id_column: str = setting("RECON_BANK_ID_COLUMN")
    amount_column: str = setting("RECON_BANK_AMOUNT_COLUMN")
    currency_column: str = setting("RECON_BANK_CURRENCY_COLUMN")
    date_column: str = setting("RECON_BANK_DATE_COLUMN")
    reference_column: str | None = setting("RECON_BANK_REFERENCE_COLUMN")
    match_days: int = setting("RECON_BANK_MATCH_DAYS")
    # With many accounts: the column (RECON_ACCOUNT_COLUMN) saying whose each line is.
    account_column: str | None = None

    @field_validator("match_days")
    @classmethod
    def _days(cls, value: int) -> int:
        return parse("RECON_BANK_MATCH_DAYS", str(value))

    @property
    def enabled(self) -> bool:
        return bool(self.table)

    def mapping(self, account: str | None = None) -> BankTable:
        """The bank table's mapping; with `account` (and an account column), its lines only."""
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
            account_column=self.account_column or None,
            account=account if self.account_column else None,
        )

    def lines(self, timezone: str, account: str | None = None) -> BankLines | None:
        """The statement lines (`account`'s, with many accounts), days cut in `timezone`; None
        when no bank table is set."""
        return BankLines(self.mapping(account), timezone) if self.enabled else None


class ReportStoreResource(dg.ConfigurableResource):
    """Where reports, line items and the sync audit are kept (DuckDB file or PostgreSQL)."""

    url: str

    def store(self, account: str = DEFAULT_ACCOUNT) -> ReportStore:
        """The store, saving and reading `account`'s reports."""
        return ReportStore(self.url, account=account)


class AssetTablesResource(dg.ConfigurableResource):
    """Where the input assets keep their frames between steps (`stores.asset_tables`): a DuckDB
    file beside the DuckDB report store, or the PostgreSQL report store's `recon_assets` schema."""

    url: str
    asset_schema: str = "recon_assets"

    def tables(self) -> AssetTables:
        return AssetTables(self.url, self.asset_schema)


class ReconciliationPolicy(dg.ConfigurableResource):
    """The thresholds and choices that decide what counts as a discrepancy."""

    timezone: str = setting("RECON_TIMEZONE")
    tolerance_percent: str = Field(
        default=str(default("BILLING_RECONCILIATION_TOLERANCE_PERCENT")),
        description=BY_NAME["BILLING_RECONCILIATION_TOLERANCE_PERCENT"].doc,
    )
    critical_percent: str = Field(
        default=str(default("RECON_CRITICAL_PERCENT")),
        description=BY_NAME["RECON_CRITICAL_PERCENT"].doc,
    )
    include_refunds: bool = setting("BILLING_RECONCILIATION_INCLUDE_REFUNDS")
    timing_margin_hours: float = setting("RECON_TIMING_MARGIN_HOURS")
    auto_sync: bool = setting("RECON_AUTO_SYNC")
    match_on: MatchOn = setting("RECON_MATCH_ON")

    @field_validator("match_on", mode="before")
    @classmethod
    def _match_on(cls, value: str) -> str:
        return parse("RECON_MATCH_ON", value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return parse("RECON_TIMEZONE", value)

    @field_validator("tolerance_percent")
    @classmethod
    def _tolerance(cls, value: str) -> str:
        return str(parse("BILLING_RECONCILIATION_TOLERANCE_PERCENT", value))

    @field_validator("critical_percent")
    @classmethod
    def _critical(cls, value: str) -> str:
        return str(parse("RECON_CRITICAL_PERCENT", value))

    @property
    def tolerance(self) -> Decimal:
        return Decimal(self.tolerance_percent)

    @property
    def critical(self) -> Decimal:
        return Decimal(self.critical_percent)

    @property
    def margin(self) -> timedelta:
        return timedelta(hours=self.timing_margin_hours)


class MonthCloseResource(dg.ConfigurableResource):
    """What the month close needs beyond Stripe and the store: where the balance starts, the
    GL mapping, and what a late change to a locked month does."""

    start_date: str = Field(
        default=str(default("RECON_START_DATE")), description=BY_NAME["RECON_START_DATE"].doc
    )
    opening_balances: str = Field(
        default="", description=f"{BY_NAME['RECON_OPENING_BALANCES'].doc} (RECON_OPENING_BALANCES)"
    )
    gl_mapping: str | None = setting("RECON_GL_MAPPING")
    locked_period_policy: str = setting("RECON_LOCKED_PERIOD_POLICY")

    @field_validator("opening_balances")
    @classmethod
    def _balances(cls, value: str) -> str:
        parse("RECON_OPENING_BALANCES", value)
        return value

    @field_validator("locked_period_policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        return parse("RECON_LOCKED_PERIOD_POLICY", value)

    def first_day(self) -> date:
        return parse("RECON_START_DATE", self.start_date)

    def opening(self) -> dict[str, int] | None:
        """RECON_OPENING_BALANCES in minor units; None: summed from Stripe's history."""
        return parse("RECON_OPENING_BALANCES", self.opening_balances)

    def mapping(self) -> GLMapping:
        return gl_mapping.load(self.gl_mapping)
