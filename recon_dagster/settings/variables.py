"""The table of settings: every environment variable the product reads, written down once.

Each row has the variable's name, its parser, its default (as the text one would write in
`.env`), whether it is a secret, and one line of documentation. `read` is the only code that
reads the environment; `Settings.from_env` assembles its values; resources take their defaults
from `default`; `.env.example` and the README's settings table are generated from it
(`python -m recon_dagster.settings.docs --write`, and a test that they are up to date).
"""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, get_args

from recon_dagster.core.result import MatchOn
from recon_dagster.settings.accounts import parse_accounts
from recon_dagster.settings.parsing import (
    ConfigError,
    parse_amount_unit,
    parse_balances,
    parse_bool,
    parse_choice,
    parse_column,
    parse_count,
    parse_database_url,
    parse_date,
    parse_existing_file,
    parse_hours,
    parse_http_url,
    parse_moment,
    parse_optional_column,
    parse_optional_table,
    parse_percent,
    parse_positive_int,
    parse_rate,
    parse_seconds,
    parse_statuses,
    parse_table,
    parse_text,
    parse_timezone,
    parse_webhook_url,
)

MATCH_MODES: tuple[str, ...] = get_args(MatchOn)


@dataclass(frozen=True)
class Variable:
    """One environment variable: how to read it, its default, and what it means."""

    name: str
    group: str
    parse: Callable[[str, str], Any]  # (variable name, text) -> value, or ConfigError
    default: str  # as written in .env; "" is unset
    doc: str  # one line, Markdown
    secret: bool = False  # never logged, shown or echoed in an error
    default_doc: str = ""  # what an unset default means, for the README ("Stripe's", ...)
    example: str = ""  # a value to show in .env.example when there is no default


def _mirror_source(variable: str, value: str) -> str:
    """`api`, or the PostgreSQL URL of a Stripe mirror."""
    if value.strip().lower() == "api":
        return "api"
    if not value.strip().startswith(("postgresql://", "postgres://")):
        raise ConfigError(variable, "expected api, or the postgresql://… URL of a Stripe mirror")
    return parse_database_url(variable, value, files=())


def _optional_database_url(variable: str, value: str) -> str | None:
    if not value.strip():
        return None
    return parse_database_url(
        variable, value, servers=("postgresql", "mysql"), files=("duckdb", "sqlite")
    )


def _optional_budget_url(variable: str, value: str) -> str | None:
    """`off`, a `sqlite:///` file or a PostgreSQL URL; unset: beside the report store."""
    if not value.strip():
        return None
    if value.strip().lower() == "off":
        return "off"
    return parse_database_url(variable, value, servers=("postgresql",), files=("sqlite",))


_TABLE_URL = partial(
    parse_database_url, servers=("postgresql", "mysql"), files=("duckdb", "sqlite")
)
_STORE_URL = partial(parse_database_url, servers=("postgresql",), files=("duckdb",))
_MATCH_ON = partial(parse_choice, choices=MATCH_MODES, what="a matching mode")
_IDENTIFIER = parse_column  # a schema name has the same shape as a column name
LOCKED_PERIOD_POLICIES = ("book_in_open_period", "reopen")
_LOCKED_POLICY = partial(
    parse_choice, choices=LOCKED_PERIOD_POLICIES, what="a locked-period policy"
)

STRIPE, PAYMENTS, BANK, MIRROR = (
    "Stripe",
    "The payments table",
    "The bank (payouts)",
    "Stripe mirror",
)
LATE, DAYS, POLICY, ALERTS = "Late changes", "Days and storage", "Reconciliation", "Alerts"
CLOSE, DISTRIBUTED = "Month close", "Distributed execution"
ACCOUNTS = "Accounts (Connect and multi-entity)"

V = Variable
VARIABLES: tuple[Variable, ...] = (
    # --- Stripe
    V("STRIPE_API_KEY", STRIPE, parse_text, "",
      "Stripe secret or restricted key (read access to charges, disputes, payouts, balance "
      "transactions and events)", secret=True,
      example="sk_live_or_test_key_here"),
    V("STRIPE_API_BASE", STRIPE, parse_http_url, "",
      "override the API base URL (the local server in tests and the demo)",
      default_doc="Stripe's", example="http://127.0.0.1:12111"),
    V("STRIPE_MAX_NETWORK_RETRIES", STRIPE, parse_count, "4",
      "retries on 5xx, 429 (honouring `Retry-After`) and network errors"),
    V("STRIPE_REQUESTS_PER_SECOND", STRIPE, parse_rate, "",
      "the account's budget, requests/s in all (Stripe's limits); the client aims at 95% of it",
      default_doc="by the key: `100` live, `25` test"),
    V("STRIPE_ENDPOINT_REQUESTS_PER_SECOND", STRIPE, parse_rate, "25",
      "each endpoint's budget (`GET /v1/charges`, `GET /v1/charges/{id}`, … count apart): "
      "Stripe's default; raise it if Stripe raised yours"),
    V("STRIPE_TIMEOUT_SECONDS", STRIPE, parse_seconds, "30", "each request's timeout, in seconds"),
    V("RECON_STRIPE_BUDGET_URL", STRIPE, _optional_budget_url, "",
      "where every process and run shares each account's request budget: `sqlite:///path` or "
      "`postgresql://…` (`off`: each process paces alone)", secret=True,
      default_doc="beside the report store (its PostgreSQL, or a SQLite file beside DuckDB)",
      example="sqlite:///data/stripe_budget.sqlite"),
    # --- Accounts
    V("RECON_STRIPE_CONNECT", ACCOUNTS, parse_bool, "false",
      "reconcile a platform's own account (`platform`) and its connected accounts "
      "(`GET /v1/accounts`, each called with the `Stripe-Account` header), each its own "
      "partition of `stripe_accounts`"),
    V("RECON_STRIPE_ACCOUNTS", ACCOUNTS, parse_accounts, "",
      "with Connect, the accounts to reconcile (`platform,acct_1,acct_2`); else accounts by the "
      "variable holding each one's key (`eu:STRIPE_API_KEY_EU,us:STRIPE_API_KEY_US`)",
      default_doc="(Connect: `platform` and every connected account; else the one `default`)",
      example="eu:STRIPE_API_KEY_EU,us:STRIPE_API_KEY_US"),
    V("RECON_ACCOUNT_COLUMN", ACCOUNTS, parse_optional_column, "",
      "the payments table's column naming each row's account (a connected account id or an "
      "account's name)", default_doc="(none: every row is the one account's)",
      example="stripe_account"),
    V("RECON_ACCOUNTS_INTERVAL_SECONDS", ACCOUNTS, parse_positive_int, "600",
      "how often `stripe_accounts_sensor` looks for new accounts"),
    # --- The payments table
    V("RECON_DATABASE_URL", PAYMENTS, _TABLE_URL, "duckdb:///data/demo/app.duckdb",
      "`postgresql://user:pass@host:5432/db`, `mysql://user:pass@host:3306/db` (`mariadb://` "
      "the same), `sqlite:///path/app.db` or `duckdb:///path` (see \"Your database\")",
      secret=True),
    V("RECON_PAYMENTS_TABLE", PAYMENTS, parse_table, "payments",
      "may be qualified: `billing.orders` (a schema; on MySQL a database)"),
    V("RECON_PAYMENTS_ID_COLUMN", PAYMENTS, parse_column, "stripe_charge_id",
      "the column holding the Stripe charge id or PaymentIntent id"),
    V("RECON_MATCH_ON", PAYMENTS, _MATCH_ON, "auto",
      "`auto` (each row by its id's prefix: `ch_`/`py_` charge, `pi_` PaymentIntent), "
      "`charge`, or `payment_intent`"),
    V("RECON_PAYMENTS_AMOUNT_COLUMN", PAYMENTS, parse_column, "amount", "the amount column"),
    V("RECON_PAYMENTS_AMOUNT_UNIT", PAYMENTS, parse_amount_unit, "minor",
      "`minor` (cents) or `major` (dollars)"),
    V("RECON_PAYMENTS_CURRENCY_COLUMN", PAYMENTS, parse_column, "currency",
      "ISO 4217 code, any case (anything else is an invalid row)"),
    V("RECON_PAYMENTS_STATUS_COLUMN", PAYMENTS, parse_column, "status", "the status column"),
    V("RECON_PAYMENTS_CREATED_AT_COLUMN", PAYMENTS, parse_column, "created_at",
      "timestamp; without a time zone it is read in `RECON_DB_TIMEZONE`"),
    V("RECON_DB_TIMEZONE", PAYMENTS, parse_timezone, "UTC",
      "the zone of wall times in a created_at column without one (PostgreSQL `timestamp`, "
      "MySQL `DATETIME`, SQLite text)"),
    V("RECON_PAYMENTS_REFUNDED_COLUMN", PAYMENTS, parse_optional_column, "",
      "refunded amount, in the same unit as the amount", default_doc="(none)",
      example="amount_refunded"),
    V("RECON_PAYMENTS_PAID_STATUSES", PAYMENTS, parse_statuses, "succeeded,paid,completed",
      "statuses that mean money was collected (comma-separated, any case)"),
    # --- The bank
    V("RECON_BANK_TABLE", BANK, parse_optional_table, "",
      "the table of bank statement lines; may be qualified",
      default_doc="(none: bank step skipped, and the report says so)", example="bank_lines"),
    V("RECON_BANK_DATABASE_URL", BANK, _optional_database_url, "",
      "where the bank table lives", secret=True, default_doc="`RECON_DATABASE_URL`"),
    V("RECON_BANK_ID_COLUMN", BANK, parse_column, "id", "the line's id"),
    V("RECON_BANK_AMOUNT_COLUMN", BANK, parse_column, "amount",
      "deposits are positive; other lines are ignored"),
    V("RECON_BANK_AMOUNT_UNIT", BANK, parse_amount_unit, "minor", "`minor` or `major`"),
    V("RECON_BANK_CURRENCY_COLUMN", BANK, parse_column, "currency", "ISO 4217"),
    V("RECON_BANK_DATE_COLUMN", BANK, parse_column, "booked_on",
      "a `DATE` (taken as it is) or a timestamp (its date in `RECON_TIMEZONE`)"),
    V("RECON_BANK_REFERENCE_COLUMN", BANK, parse_optional_column, "", "the statement text",
      default_doc="(none)", example="memo"),
    V("RECON_BANK_MATCH_DAYS", BANK, parse_count, "3",
      "how many days after `arrival_date` the deposit may be booked"),
    # --- A Stripe mirror
    V("RECON_STRIPE_SOURCE", MIRROR, _mirror_source, "api",
      "`api`, or the `postgresql://` URL of a Stripe mirror (see \"Production\")", secret=True),
    V("RECON_STRIPE_MIRROR_SCHEMA", MIRROR, _IDENTIFIER, "stripe", "the mirror's schema"),
    V("RECON_MIRROR_MIN_LAG_MINUTES", MIRROR, parse_count, "60",
      "a day is complete once the mirror synced this long after its end"),
    V("RECON_MIRROR_SPOT_CHECK", MIRROR, parse_count, "50",
      "charges (and payouts) per day compared with the API (0: off; needs `STRIPE_API_KEY`)"),
    # --- Late changes
    V("RECON_LATE_CHANGES_INTERVAL_SECONDS", LATE, parse_positive_int, "300",
      "how often `stripe_late_changes` reads Stripe's events"),
    V("RECON_RECHECK_DAYS", LATE, parse_positive_int, "35",
      "how many days the weekly `recheck_recent_days` schedule re-reconciles"),
    # --- Days and storage
    V("RECON_TIMEZONE", DAYS, parse_timezone, "UTC", "the calendar the days are cut in"),
    V("RECON_START_DATE", DAYS, parse_date, "2024-01-01", "first daily partition"),
    V("RECON_REPORT_STORE_URL", DAYS, _STORE_URL, "duckdb:///data/recon.duckdb",
      "DuckDB file or PostgreSQL for the report history", secret=True),
    # --- The reconciliation
    V("BILLING_RECONCILIATION_TOLERANCE_PERCENT", POLICY, parse_percent, "1",
      "above it: `discrepancy_found`, check WARN"),
    V("BILLING_RECONCILIATION_INCLUDE_REFUNDS", POLICY, parse_bool, "true",
      "compare amounts net of refunds"),
    V("RECON_CRITICAL_PERCENT", POLICY, parse_percent, "5",
      "above it: check ERROR (must be ≥ the tolerance)"),
    V("RECON_TIMING_MARGIN_HOURS", POLICY, parse_hours, "24",
      "how far across midnight counterparts are looked for"),
    V("RECON_AUTO_SYNC", POLICY, parse_bool, "false",
      "sync missing payments after each day's reconciliation"),
    # --- Month close
    V("RECON_OPENING_BALANCES", CLOSE, parse_balances, "",
      "the Stripe balance at the start of `RECON_START_DATE`, major units (e.g. "
      "`usd=1234.56,eur=0`)", default_doc="(none: summed from every earlier balance transaction)",
      example="usd=1234.56,eur=0"),
    V("RECON_GL_MAPPING", CLOSE, parse_existing_file, "",
      "a TOML file mapping each Stripe reporting category to a debit and a credit account",
      default_doc="(the one that ships: `recon_dagster/close/default_gl_mapping.toml`)",
      example="gl_mapping.toml"),
    V("RECON_LOCKED_PERIOD_POLICY", CLOSE, _LOCKED_POLICY, "book_in_open_period",
      "a late change to a locked month: `book_in_open_period` (a prior-period adjustment in the "
      "open month) or `reopen` (unlock it and close it again)"),
    # --- Distributed execution
    V("RECON_CELERY_BROKER_URL", DISTRIBUTED, parse_text, "pyamqp://guest@127.0.0.1:5672//",
      "the Celery broker `daily_reconciliation_celery` sends its steps through (RabbitMQ; see "
      "\"Production\")", secret=True),
    # --- Alerts
    V("RECON_DASHBOARD_URL", ALERTS, parse_http_url, "",
      "the Dagster UI's address, for links in alerts", example="http://127.0.0.1:3000"),
    V("SLACK_WEBHOOK_URL", ALERTS, parse_webhook_url, "",
      "Slack incoming webhook for every failed check (WARN and ERROR)", secret=True,
      example="https://hooks.slack.com/services/..."),
    V("SLACK_BOT_TOKEN", ALERTS, parse_text, "",
      "post as a bot instead (with `SLACK_CHANNEL`; scope `chat:write`)", secret=True,
      example="xoxb-..."),
    V("SLACK_CHANNEL", ALERTS, parse_text, "", "the bot's channel", example="#billing-alerts"),
    V("PAGERDUTY_ROUTING_KEY", ALERTS, parse_text, "",
      "Events API v2 routing key, for critical days (check ERROR)", secret=True,
      example="your-pagerduty-routing-key"),
    V("PAGERDUTY_EVENTS_URL", ALERTS, parse_http_url, "https://events.pagerduty.com/v2/enqueue",
      "the Events API endpoint (e.g. the EU one)"),
    V("RECON_ALERTS_SINCE", ALERTS, parse_moment, "",
      "a date (midnight in `RECON_TIMEZONE`) or an ISO timestamp; check evaluations older than it "
      "are recorded as seen, never sent (see \"Alerts\")",
      default_doc="(none: send the whole backlog)", example="2026-11-01"),
    V("RECON_ALERTS_INTERVAL_SECONDS", ALERTS, parse_positive_int, "60",
      "how often `dagster-daemon` runs the two alert sensors"),
)  # fmt: skip  # a row per variable, laid out as the table it is
BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}
SECRETS = frozenset(v.name for v in VARIABLES if v.secret)


def environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `environ`, or of the process's environment when None."""
    return dict(os.environ if environ is None else environ)


def read(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every variable's value, parsed: as set (not blank) in `environ` (default: the process's
    environment), else its default. The first bad value raises `ConfigError` naming it."""
    env = environment(environ)
    return {v.name: v.parse(v.name, _text(env, v)) for v in VARIABLES}


def value(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One variable's value, parsed (as set, else its default)."""
    return parse(name, text(name, environ))


def text(name: str, environ: Mapping[str, str] | None = None) -> str:
    """One variable's text, as set (not blank), else its default's."""
    return _text(environment(environ), BY_NAME[name])


def is_set(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `name` is set to something other than blanks (an unset secret turns its feature
    off, where a set one is passed on as an `EnvVar`)."""
    env = os.environ if environ is None else environ
    return bool((env.get(name) or "").strip())


def secret(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of a variable outside the table that holds a secret (a multi-entity account's
    key, named in RECON_STRIPE_ACCOUNTS), read when needed; `ConfigError` if it is unset."""
    env = os.environ if environ is None else environ
    value = (env.get(name) or "").strip()
    if not value:
        raise ConfigError(name, "is not set: RECON_STRIPE_ACCOUNTS says it holds an account's key")
    return value


def parse(name: str, text: str) -> Any:
    """`text` read as the variable `name` is read (a wrong value gets the same message)."""
    return BY_NAME[name].parse(name, text)


def default(name: str) -> Any:
    """The parsed default of `name`: what a resource field defaults to."""
    variable = BY_NAME[name]
    return variable.parse(name, variable.default)


def _text(env: Mapping[str, str], variable: Variable) -> str:
    value = env.get(variable.name)
    return value if value is not None and value.strip() else variable.default
