"""`Settings`: the values of the settings table, checked against each other and grouped by what
they describe (the payments table, the bank table, the policy, the sources, the alerts)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from recon_dagster.core.result import MatchOn
from recon_dagster.settings import variables
from recon_dagster.settings.accounts import Accounts
from recon_dagster.settings.parsing import AmountUnit, ConfigError, in_zone, resolve_file_url


@dataclass(frozen=True)
class PaymentsTable:
    """Where the application keeps its payments, and what its columns are called."""

    url: str
    table: str
    id_column: str
    amount_column: str
    amount_unit: AmountUnit
    currency_column: str
    status_column: str
    created_at_column: str
    refunded_column: str | None
    paid_statuses: tuple[str, ...]
    db_timezone: str  # RECON_DB_TIMEZONE: the zone of created_at columns without one
    account_column: str | None = None  # RECON_ACCOUNT_COLUMN: whose account each row is
    account: str | None = None  # with account_column: read (and write) this account's rows only


@dataclass(frozen=True)
class BankTable:
    """Where the team keeps its bank statement lines (payout reconciliation's bank step)."""

    url: str
    table: str
    id_column: str
    amount_column: str
    amount_unit: AmountUnit
    currency_column: str
    date_column: str
    reference_column: str | None
    match_days: int
    db_timezone: str
    # With many accounts, the bank lines say whose they are in the same column as the payments.
    account_column: str | None = None
    account: str | None = None

    def as_payments_table(self) -> PaymentsTable:
        """The same table through the payments reader, which already reads any of the four
        databases exactly: date -> created_at, reference (or, without one, the id) -> status."""
        return PaymentsTable(
            url=self.url,
            table=self.table,
            id_column=self.id_column,
            amount_column=self.amount_column,
            amount_unit=self.amount_unit,
            currency_column=self.currency_column,
            status_column=self.reference_column or self.id_column,
            created_at_column=self.date_column,
            refunded_column=None,
            paid_statuses=(),
            db_timezone=self.db_timezone,
            account_column=self.account_column,
            account=self.account,
        )


@dataclass(frozen=True)
class Settings:
    """Every setting's value (see `variables.VARIABLES` for what each means and defaults to).

    Secrets are not kept here as values, except the Stripe key (`stripe_api_key()`): where a
    secret is set, the Dagster definitions pass it on as an `EnvVar` (`is_set`)."""

    payments: PaymentsTable
    bank: BankTable | None  # None without RECON_BANK_TABLE: the bank step is skipped
    bank_match_days: int
    timezone: str
    start_date: date
    report_store_url: str
    tolerance_percent: Decimal
    include_refunds: bool
    critical_percent: Decimal
    timing_margin_hours: float
    auto_sync: bool
    match_on: MatchOn
    stripe_api_base: str | None
    stripe_max_network_retries: int
    stripe_requests_per_second: float | None  # None: by the key's mode (stripe_pacing)
    stripe_endpoint_requests_per_second: float
    stripe_timeout_seconds: float
    stripe_source: str  # "api", or the PostgreSQL URL of a Stripe mirror
    mirror_schema: str
    mirror_min_lag_minutes: int
    mirror_spot_check: int
    recheck_days: int
    late_changes_interval_seconds: int
    dashboard_url: str | None
    slack_channel: str | None
    pagerduty_events_url: str
    alerts_since: datetime | None
    alerts_interval_seconds: int
    opening_balances: dict[str, int] | None  # minor units at the start of start_date
    gl_mapping: str | None  # a TOML file; None: the one that ships
    locked_period_policy: str  # book_in_open_period | reopen
    accounts: Accounts  # RECON_STRIPE_CONNECT and RECON_STRIPE_ACCOUNTS
    accounts_interval_seconds: int
    stripe_budget_url: str | None  # None: beside the report store; "off": per process
    env: Mapping[str, str] = field(repr=False, compare=False)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, base_dir: Path | None = None
    ) -> "Settings":
        """The settings of `environ` (default: the process's environment); file URLs are made
        absolute against `base_dir` (default: the working directory)."""
        env = variables.environment(environ)
        v = variables.read(env)
        base = base_dir or Path.cwd()
        tolerance, critical = (
            v["BILLING_RECONCILIATION_TOLERANCE_PERCENT"],
            v["RECON_CRITICAL_PERCENT"],
        )
        if critical < tolerance:
            raise ConfigError(
                "RECON_CRITICAL_PERCENT",
                f"{critical} is below BILLING_RECONCILIATION_TOLERANCE_PERCENT ({tolerance}): "
                "the critical threshold must be at least the tolerance",
            )
        payments = PaymentsTable(
            url=resolve_file_url(v["RECON_DATABASE_URL"], base),
            table=v["RECON_PAYMENTS_TABLE"],
            id_column=v["RECON_PAYMENTS_ID_COLUMN"],
            amount_column=v["RECON_PAYMENTS_AMOUNT_COLUMN"],
            amount_unit=v["RECON_PAYMENTS_AMOUNT_UNIT"],
            currency_column=v["RECON_PAYMENTS_CURRENCY_COLUMN"],
            status_column=v["RECON_PAYMENTS_STATUS_COLUMN"],
            created_at_column=v["RECON_PAYMENTS_CREATED_AT_COLUMN"],
            refunded_column=v["RECON_PAYMENTS_REFUNDED_COLUMN"],
            paid_statuses=v["RECON_PAYMENTS_PAID_STATUSES"],
            db_timezone=v["RECON_DB_TIMEZONE"],
            account_column=v["RECON_ACCOUNT_COLUMN"],
        )
        accounts = Accounts(v["RECON_STRIPE_CONNECT"], v["RECON_STRIPE_ACCOUNTS"])
        for name in accounts.setting.names:  # a named key must be there before any run starts
            key_variable = accounts.key_variable(name)
            if key_variable and not variables.is_set(key_variable, env):
                raise ConfigError(
                    key_variable,
                    f"is not set: RECON_STRIPE_ACCOUNTS says it holds the key of {name!r}",
                )
        if accounts.multi and not payments.account_column:
            raise ConfigError(
                "RECON_ACCOUNT_COLUMN",
                "is not set: with many Stripe accounts (RECON_STRIPE_CONNECT or "
                "RECON_STRIPE_ACCOUNTS), name the payments table's column that says whose each "
                "row is",
            )
        budget = v["RECON_STRIPE_BUDGET_URL"]
        return cls(
            payments=payments,
            bank=_bank(v, payments, base, accounts.multi),
            bank_match_days=v["RECON_BANK_MATCH_DAYS"],
            timezone=v["RECON_TIMEZONE"],
            start_date=v["RECON_START_DATE"],
            report_store_url=resolve_file_url(v["RECON_REPORT_STORE_URL"], base),
            tolerance_percent=tolerance,
            include_refunds=v["BILLING_RECONCILIATION_INCLUDE_REFUNDS"],
            critical_percent=critical,
            timing_margin_hours=v["RECON_TIMING_MARGIN_HOURS"],
            auto_sync=v["RECON_AUTO_SYNC"],
            match_on=v["RECON_MATCH_ON"],
            stripe_api_base=v["STRIPE_API_BASE"],
            stripe_max_network_retries=v["STRIPE_MAX_NETWORK_RETRIES"],
            stripe_requests_per_second=v["STRIPE_REQUESTS_PER_SECOND"],
            stripe_endpoint_requests_per_second=v["STRIPE_ENDPOINT_REQUESTS_PER_SECOND"],
            stripe_timeout_seconds=v["STRIPE_TIMEOUT_SECONDS"],
            stripe_source=v["RECON_STRIPE_SOURCE"],
            mirror_schema=v["RECON_STRIPE_MIRROR_SCHEMA"],
            mirror_min_lag_minutes=v["RECON_MIRROR_MIN_LAG_MINUTES"],
            mirror_spot_check=v["RECON_MIRROR_SPOT_CHECK"],
            recheck_days=v["RECON_RECHECK_DAYS"],
            late_changes_interval_seconds=v["RECON_LATE_CHANGES_INTERVAL_SECONDS"],
            dashboard_url=v["RECON_DASHBOARD_URL"],
            slack_channel=v["SLACK_CHANNEL"],
            pagerduty_events_url=v["PAGERDUTY_EVENTS_URL"],
            alerts_since=in_zone(v["RECON_ALERTS_SINCE"], v["RECON_TIMEZONE"]),
            alerts_interval_seconds=v["RECON_ALERTS_INTERVAL_SECONDS"],
            opening_balances=v["RECON_OPENING_BALANCES"],
            gl_mapping=v["RECON_GL_MAPPING"],
            locked_period_policy=v["RECON_LOCKED_PERIOD_POLICY"],
            accounts=accounts,
            accounts_interval_seconds=v["RECON_ACCOUNTS_INTERVAL_SECONDS"],
            stripe_budget_url=resolve_file_url(budget, base) if budget else None,
            env=env,
        )

    def is_set(self, name: str) -> bool:
        """Whether the variable `name` was set (not blank) where these settings were read."""
        return variables.is_set(name, self.env)

    def stripe_api_key(self) -> str:
        key = (self.env.get("STRIPE_API_KEY") or "").strip()
        if not key:
            raise ConfigError(
                "STRIPE_API_KEY", "is not set: put your Stripe secret or restricted key in it"
            )
        return key


def _bank(v: dict[str, Any], payments: PaymentsTable, base: Path, multi: bool) -> BankTable | None:
    """The bank table, when RECON_BANK_TABLE names one; its URL defaults to the payments'."""
    if v["RECON_BANK_TABLE"] is None:
        return None
    url = v["RECON_BANK_DATABASE_URL"]
    return BankTable(
        url=resolve_file_url(url, base) if url else payments.url,
        table=v["RECON_BANK_TABLE"],
        id_column=v["RECON_BANK_ID_COLUMN"],
        amount_column=v["RECON_BANK_AMOUNT_COLUMN"],
        amount_unit=v["RECON_BANK_AMOUNT_UNIT"],
        currency_column=v["RECON_BANK_CURRENCY_COLUMN"],
        date_column=v["RECON_BANK_DATE_COLUMN"],
        reference_column=v["RECON_BANK_REFERENCE_COLUMN"],
        match_days=v["RECON_BANK_MATCH_DAYS"],
        db_timezone=payments.db_timezone,
        account_column=payments.account_column if multi else None,
    )
