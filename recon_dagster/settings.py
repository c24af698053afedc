"""Every environment variable, parsed and validated in one place.

A bad value stops here, before anything is written, with a message that names the variable and
the problem. Defaults serve the demo (`recon-dagster demo`). Secrets (the Stripe key, database
URLs that may carry a password, webhook URLs, routing keys) are never echoed back: errors about
them name the variable only.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULTS: dict[str, str] = {
    "RECON_DATABASE_URL": "duckdb:///data/demo/app.duckdb",
    "RECON_PAYMENTS_TABLE": "payments",
    "RECON_PAYMENTS_ID_COLUMN": "stripe_charge_id",
    "RECON_PAYMENTS_AMOUNT_COLUMN": "amount",
    "RECON_PAYMENTS_AMOUNT_UNIT": "minor",
    "RECON_PAYMENTS_CURRENCY_COLUMN": "currency",
    "RECON_PAYMENTS_STATUS_COLUMN": "status",
    "RECON_PAYMENTS_CREATED_AT_COLUMN": "created_at",
    "RECON_PAYMENTS_REFUNDED_COLUMN": "",
    "RECON_PAYMENTS_PAID_STATUSES": "succeeded,paid,completed",
    "RECON_TIMEZONE": "UTC",
    "RECON_DB_TIMEZONE": "UTC",
    "RECON_START_DATE": "2024-01-01",
    "RECON_REPORT_STORE_URL": "duckdb:///data/recon.duckdb",
    "BILLING_RECONCILIATION_TOLERANCE_PERCENT": "1",
    "BILLING_RECONCILIATION_INCLUDE_REFUNDS": "true",
    "RECON_CRITICAL_PERCENT": "5",
    "RECON_TIMING_MARGIN_HOURS": "24",
    "RECON_AUTO_SYNC": "false",
    "STRIPE_MAX_NETWORK_RETRIES": "4",
    # empty: Stripe's limit for the key's mode, 100 live or 25 test
    "STRIPE_REQUESTS_PER_SECOND": "",
    # Stripe's default per endpoint; raise it if Stripe raised yours
    "STRIPE_ENDPOINT_REQUESTS_PER_SECOND": "25",
    "STRIPE_TIMEOUT_SECONDS": "30",
    "RECON_ALERTS_SINCE": "",
    "RECON_MATCH_ON": "auto",
    "RECON_ALERTS_INTERVAL_SECONDS": "60",
    "RECON_BANK_DATABASE_URL": "",  # empty: RECON_DATABASE_URL
    "RECON_BANK_TABLE": "",  # empty: no bank step
    "RECON_BANK_ID_COLUMN": "id",
    "RECON_BANK_AMOUNT_COLUMN": "amount",
    "RECON_BANK_AMOUNT_UNIT": "minor",
    "RECON_BANK_CURRENCY_COLUMN": "currency",
    "RECON_BANK_DATE_COLUMN": "booked_on",
    "RECON_BANK_REFERENCE_COLUMN": "",
    "RECON_BANK_MATCH_DAYS": "3",
    "RECON_STRIPE_SOURCE": "api",
    "RECON_STRIPE_MIRROR_SCHEMA": "stripe",
    "RECON_MIRROR_MIN_LAG_MINUTES": "60",
    "RECON_MIRROR_SPOT_CHECK": "50",
    "RECON_RECHECK_DAYS": "35",
    "RECON_LATE_CHANGES_INTERVAL_SECONDS": "300",
}

SECRET_VARIABLES = frozenset(
    {
        "STRIPE_API_KEY",
        "RECON_DATABASE_URL",
        "RECON_REPORT_STORE_URL",
        "RECON_BANK_DATABASE_URL",
        "RECON_STRIPE_SOURCE",
        "SLACK_WEBHOOK_URL",
        "SLACK_BOT_TOKEN",
        "PAGERDUTY_ROUTING_KEY",
    }
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""

    def __init__(self, variable: str, problem: str):
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


def redact_url(url: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`, for messages."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def parse_identifier(variable: str, value: str, *, qualified: bool = False) -> str:
    """A SQL identifier we will quote; `schema.table` when `qualified`."""
    parts = value.split(".") if qualified else [value]
    if not value or len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        shape = "a table name or schema.table" if qualified else "a column name"
        raise ConfigError(
            variable,
            f"{value!r} is not a valid SQL identifier: expected {shape} of letters, digits "
            "and underscores, not starting with a digit",
        )
    return value


def parse_percent(variable: str, value: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        raise ConfigError(
            variable, f"{value!r} is not a number: expected a percentage such as 1 or 0.5"
        ) from None
    if not number.is_finite() or number < 0 or number > 100:
        raise ConfigError(
            variable, f"{value!r} is out of range: expected a percentage from 0 to 100"
        )
    return number


def parse_bool(variable: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(variable, f"{value!r} is not a boolean: expected true or false")


def parse_timezone(variable: str, value: str) -> str:
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            variable,
            f"{value!r} is not a known IANA time zone (for example UTC or America/New_York)",
        ) from None
    return value.strip()


def parse_date(variable: str, value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(variable, f"{value!r} is not a date: expected YYYY-MM-DD") from None


def parse_instant(variable: str, value: str, tz: str) -> datetime | None:
    """A date (midnight in `tz`) or an ISO timestamp (in `tz` when it has no offset); None when
    empty."""
    text = value.strip()
    if not text:
        return None
    try:
        moment = (
            datetime.combine(date.fromisoformat(text), time(0))
            if len(text) <= 10
            else datetime.fromisoformat(text)
        )
    except ValueError:
        raise ConfigError(
            variable,
            f"{value!r} is not a date or timestamp: expected YYYY-MM-DD or "
            "YYYY-MM-DDTHH:MM:SS with an optional offset such as +00:00",
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo(tz))


MATCH_ON = ("auto", "charge", "payment_intent")


def parse_match_on(variable: str, value: str) -> str:
    text = value.strip().lower()
    if text not in MATCH_ON:
        raise ConfigError(
            variable, f"{value!r} is not a matching mode: expected auto, charge or payment_intent"
        )
    return text


def parse_positive(variable: str, value: str, kind: type = float, *, allow_zero: bool = False):
    try:
        number = kind(value.strip())
    except ValueError:
        raise ConfigError(
            variable, f"{value!r} is not a {'whole ' if kind is int else ''}number"
        ) from None
    if number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(
            variable, f"{value!r} must be {'zero or more' if allow_zero else 'greater than zero'}"
        )
    return number


def parse_rate(variable: str, value: str) -> float | None:
    """Requests per second: a positive, finite number; None when empty (the default for the key's
    mode)."""
    if not value.strip():
        return None
    number = parse_positive(variable, value, float)
    if not math.isfinite(number):
        raise ConfigError(variable, f"{value!r} is not a finite number of requests per second")
    return number


def parse_database_url(
    variable: str,
    value: str,
    *,
    base_dir: Path,
    servers: tuple[str, ...] = ("postgresql",),
    files: tuple[str, ...] = ("duckdb",),
) -> str:
    """A server URL (`postgresql://…`, `mysql://…`) as given; a file URL (`duckdb:///relative`,
    `sqlite:////absolute`) made absolute. `servers` and `files` are the kinds `variable` takes."""
    text = value.strip()
    schemes = {"postgresql": ("postgresql://", "postgres://"), "mysql": ("mysql://", "mariadb://")}
    if any(text.startswith(schemes[kind]) for kind in servers):
        try:
            urlsplit(text).port  # noqa: B018 - a bad port raises here, before any connection
        except ValueError:
            raise ConfigError(variable, "has a port that is not a number") from None
        return text
    for kind in files:
        if text.startswith(f"{kind}:///"):
            raw = text[len(f"{kind}:///") :]
            if not raw:
                raise ConfigError(
                    variable, f"a {kind} URL needs a file path: {kind}:///data/app.{kind}"
                )
            path = Path(raw) if raw.startswith("/") else (base_dir / raw)
            if not raw.startswith("/") and not path.exists() and Path("/" + raw).is_file():
                path = Path(
                    "/" + raw
                )  # `sqlite:///tmp/app.db` meant the absolute path (connectorx's form)
            return f"{kind}:///{path.resolve()}"
    examples = {
        "postgresql": "postgresql://user@host:5432/dbname",
        "mysql": "mysql://user:password@host:3306/dbname",
        "duckdb": "duckdb:///path/to/file.duckdb",
        "sqlite": "sqlite:///path/to/file.db (sqlite:////abs/path.db)",
    }
    raise ConfigError(
        variable,
        "expected "
        + " or ".join(examples[kind] for kind in (*servers, *files))
        + ("" if variable in SECRET_VARIABLES else f", got {value!r}"),
    )


@dataclass(frozen=True)
class PaymentsTable:
    """Where the application keeps its payments, and what its columns are called."""

    url: str
    table: str
    id_column: str
    amount_column: str
    amount_unit: str  # "minor" | "major"
    currency_column: str
    status_column: str
    created_at_column: str
    refunded_column: str | None
    paid_statuses: tuple[str, ...]
    db_timezone: str = "UTC"  # RECON_DB_TIMEZONE: the zone of created_at columns without one


@dataclass(frozen=True)
class BankTable:
    """Where the team keeps its bank statement lines (payout reconciliation's bank step)."""

    url: str
    table: str
    id_column: str
    amount_column: str
    amount_unit: str  # "minor" | "major"
    currency_column: str
    date_column: str
    reference_column: str | None
    match_days: int
    db_timezone: str = "UTC"

    def as_payments_table(self) -> PaymentsTable:
        """The same table through the payments reader, which already reads any of the four databases
        exactly: date -> created_at, reference (or, without one, the id) -> status."""
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
        )


@dataclass(frozen=True)
class Settings:
    payments: PaymentsTable
    timezone: str
    start_date: date
    report_store_url: str
    tolerance_percent: Decimal
    include_refunds: bool
    critical_percent: Decimal
    timing_margin_hours: float
    auto_sync: bool
    stripe_api_base: str | None
    stripe_max_network_retries: int
    stripe_requests_per_second: (
        float | None
    )  # None: by the key's mode (stripe_pacing.account_limit)
    stripe_timeout_seconds: float
    dashboard_url: str | None
    stripe_endpoint_requests_per_second: float = 25.0  # STRIPE_ENDPOINT_REQUESTS_PER_SECOND
    env: Mapping[str, str] = field(repr=False, compare=False, default_factory=dict)
    # Alerts (recon_dagster/alerts). The secrets (SLACK_WEBHOOK_URL, SLACK_BOT_TOKEN,
    # PAGERDUTY_ROUTING_KEY) are not kept here: definitions.py passes them as EnvVars.
    slack_channel: str | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    match_on: str = "auto"  # RECON_MATCH_ON: auto (by each id's prefix) | charge | payment_intent
    alerts_since: datetime | None = (
        None  # RECON_ALERTS_SINCE: older evaluations are recorded, not sent
    )
    alerts_interval_seconds: int = (
        60  # RECON_ALERTS_INTERVAL_SECONDS: the alert sensors' minimum interval
    )
    bank: BankTable | None = (
        None  # RECON_BANK_*: None without RECON_BANK_TABLE (the bank step is skipped)
    )
    bank_match_days: int = 3  # RECON_BANK_MATCH_DAYS
    # RECON_STRIPE_SOURCE: "api", or the PostgreSQL URL of a Stripe mirror
    # (sources/stripe_mirror.py)
    stripe_source: str = "api"
    mirror_schema: str = "stripe"  # RECON_STRIPE_MIRROR_SCHEMA
    mirror_min_lag_minutes: int = 60  # RECON_MIRROR_MIN_LAG_MINUTES
    mirror_spot_check: int = (
        50  # RECON_MIRROR_SPOT_CHECK: charges compared with the API per day (0: off)
    )
    recheck_days: int = (
        35  # RECON_RECHECK_DAYS: how far back the weekly recheck_recent_days schedule goes
    )
    late_changes_interval_seconds: int = (
        300  # RECON_LATE_CHANGES_INTERVAL_SECONDS: how often Stripe's events are read
    )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, base_dir: Path | None = None
    ) -> Settings:
        env = dict(os.environ if environ is None else environ)
        base = base_dir or Path.cwd()

        def get(name: str) -> str:
            value = env.get(name)
            return DEFAULTS.get(name, "") if value is None or value.strip() == "" else value

        unit = get("RECON_PAYMENTS_AMOUNT_UNIT").strip().lower()
        if unit not in ("minor", "major"):
            raise ConfigError(
                "RECON_PAYMENTS_AMOUNT_UNIT", f"{unit!r} is not a unit: expected minor or major"
            )
        statuses = tuple(
            s.strip() for s in get("RECON_PAYMENTS_PAID_STATUSES").split(",") if s.strip()
        )
        if not statuses:
            raise ConfigError(
                "RECON_PAYMENTS_PAID_STATUSES",
                "needs at least one status, for example succeeded,paid",
            )
        refunded = get("RECON_PAYMENTS_REFUNDED_COLUMN").strip()
        payments = PaymentsTable(
            url=parse_database_url(
                "RECON_DATABASE_URL",
                get("RECON_DATABASE_URL"),
                base_dir=base,
                servers=("postgresql", "mysql"),
                files=("duckdb", "sqlite"),
            ),
            table=parse_identifier(
                "RECON_PAYMENTS_TABLE", get("RECON_PAYMENTS_TABLE").strip(), qualified=True
            ),
            id_column=parse_identifier(
                "RECON_PAYMENTS_ID_COLUMN", get("RECON_PAYMENTS_ID_COLUMN").strip()
            ),
            amount_column=parse_identifier(
                "RECON_PAYMENTS_AMOUNT_COLUMN", get("RECON_PAYMENTS_AMOUNT_COLUMN").strip()
            ),
            amount_unit=unit,
            currency_column=parse_identifier(
                "RECON_PAYMENTS_CURRENCY_COLUMN", get("RECON_PAYMENTS_CURRENCY_COLUMN").strip()
            ),
            status_column=parse_identifier(
                "RECON_PAYMENTS_STATUS_COLUMN", get("RECON_PAYMENTS_STATUS_COLUMN").strip()
            ),
            created_at_column=parse_identifier(
                "RECON_PAYMENTS_CREATED_AT_COLUMN", get("RECON_PAYMENTS_CREATED_AT_COLUMN").strip()
            ),
            refunded_column=parse_identifier("RECON_PAYMENTS_REFUNDED_COLUMN", refunded)
            if refunded
            else None,
            paid_statuses=statuses,
            db_timezone=parse_timezone("RECON_DB_TIMEZONE", get("RECON_DB_TIMEZONE")),
        )
        tolerance = parse_percent(
            "BILLING_RECONCILIATION_TOLERANCE_PERCENT",
            get("BILLING_RECONCILIATION_TOLERANCE_PERCENT"),
        )
        critical = parse_percent("RECON_CRITICAL_PERCENT", get("RECON_CRITICAL_PERCENT"))
        if critical < tolerance:
            raise ConfigError(
                "RECON_CRITICAL_PERCENT",
                f"{critical} is below BILLING_RECONCILIATION_TOLERANCE_PERCENT ({tolerance}): "
                "the critical threshold must be at least the tolerance",
            )
        api_base = env.get("STRIPE_API_BASE", "").strip() or None
        if api_base is not None and not api_base.startswith(("http://", "https://")):
            raise ConfigError("STRIPE_API_BASE", f"{api_base!r} is not an http(s) URL")
        dashboard = env.get("RECON_DASHBOARD_URL", "").strip() or None
        if dashboard is not None and not dashboard.startswith(("http://", "https://")):
            raise ConfigError("RECON_DASHBOARD_URL", f"{dashboard!r} is not an http(s) URL")
        webhook = env.get("SLACK_WEBHOOK_URL", "").strip()
        if webhook and not webhook.startswith(("http://", "https://")):
            raise ConfigError(
                "SLACK_WEBHOOK_URL",
                "is not an http(s) URL: expected https://hooks.slack.com/services/...",
            )
        events_url = (
            env.get("PAGERDUTY_EVENTS_URL", "").strip() or "https://events.pagerduty.com/v2/enqueue"
        )
        if not events_url.startswith(("http://", "https://")):
            raise ConfigError("PAGERDUTY_EVENTS_URL", f"{events_url!r} is not an http(s) URL")
        timezone = parse_timezone("RECON_TIMEZONE", get("RECON_TIMEZONE"))
        match_days = parse_positive(
            "RECON_BANK_MATCH_DAYS", get("RECON_BANK_MATCH_DAYS"), int, allow_zero=True
        )
        bank = None
        if get("RECON_BANK_TABLE").strip():
            bank_unit = get("RECON_BANK_AMOUNT_UNIT").strip().lower()
            if bank_unit not in ("minor", "major"):
                raise ConfigError(
                    "RECON_BANK_AMOUNT_UNIT",
                    f"{bank_unit!r} is not a unit: expected minor or major",
                )
            reference = get("RECON_BANK_REFERENCE_COLUMN").strip()
            bank = BankTable(
                url=parse_database_url(
                    "RECON_BANK_DATABASE_URL",
                    get("RECON_BANK_DATABASE_URL").strip() or get("RECON_DATABASE_URL"),
                    base_dir=base,
                    servers=("postgresql", "mysql"),
                    files=("duckdb", "sqlite"),
                ),
                table=parse_identifier(
                    "RECON_BANK_TABLE", get("RECON_BANK_TABLE").strip(), qualified=True
                ),
                id_column=parse_identifier(
                    "RECON_BANK_ID_COLUMN", get("RECON_BANK_ID_COLUMN").strip()
                ),
                amount_column=parse_identifier(
                    "RECON_BANK_AMOUNT_COLUMN", get("RECON_BANK_AMOUNT_COLUMN").strip()
                ),
                amount_unit=bank_unit,
                currency_column=parse_identifier(
                    "RECON_BANK_CURRENCY_COLUMN", get("RECON_BANK_CURRENCY_COLUMN").strip()
                ),
                date_column=parse_identifier(
                    "RECON_BANK_DATE_COLUMN", get("RECON_BANK_DATE_COLUMN").strip()
                ),
                reference_column=parse_identifier("RECON_BANK_REFERENCE_COLUMN", reference)
                if reference
                else None,
                match_days=match_days,
                db_timezone=payments.db_timezone,
            )
        source = get("RECON_STRIPE_SOURCE").strip()
        if source.lower() == "api":
            source = "api"
        elif not source.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                "RECON_STRIPE_SOURCE", "expected api, or the postgresql://… URL of a Stripe mirror"
            )
        return cls(
            stripe_source=source,
            recheck_days=parse_positive("RECON_RECHECK_DAYS", get("RECON_RECHECK_DAYS"), int),
            late_changes_interval_seconds=parse_positive(
                "RECON_LATE_CHANGES_INTERVAL_SECONDS",
                get("RECON_LATE_CHANGES_INTERVAL_SECONDS"),
                int,
            ),
            mirror_schema=parse_identifier(
                "RECON_STRIPE_MIRROR_SCHEMA", get("RECON_STRIPE_MIRROR_SCHEMA").strip()
            ),
            mirror_min_lag_minutes=parse_positive(
                "RECON_MIRROR_MIN_LAG_MINUTES",
                get("RECON_MIRROR_MIN_LAG_MINUTES"),
                int,
                allow_zero=True,
            ),
            mirror_spot_check=parse_positive(
                "RECON_MIRROR_SPOT_CHECK", get("RECON_MIRROR_SPOT_CHECK"), int, allow_zero=True
            ),
            bank=bank,
            bank_match_days=match_days,
            slack_channel=env.get("SLACK_CHANNEL", "").strip() or None,
            match_on=parse_match_on("RECON_MATCH_ON", get("RECON_MATCH_ON")),
            alerts_since=parse_instant("RECON_ALERTS_SINCE", get("RECON_ALERTS_SINCE"), timezone),
            alerts_interval_seconds=parse_positive(
                "RECON_ALERTS_INTERVAL_SECONDS", get("RECON_ALERTS_INTERVAL_SECONDS"), int
            ),
            pagerduty_events_url=events_url,
            payments=payments,
            timezone=timezone,
            start_date=parse_date("RECON_START_DATE", get("RECON_START_DATE")),
            report_store_url=parse_database_url(
                "RECON_REPORT_STORE_URL", get("RECON_REPORT_STORE_URL"), base_dir=base
            ),
            tolerance_percent=tolerance,
            include_refunds=parse_bool(
                "BILLING_RECONCILIATION_INCLUDE_REFUNDS",
                get("BILLING_RECONCILIATION_INCLUDE_REFUNDS"),
            ),
            critical_percent=critical,
            auto_sync=parse_bool("RECON_AUTO_SYNC", get("RECON_AUTO_SYNC")),
            timing_margin_hours=parse_positive(
                "RECON_TIMING_MARGIN_HOURS",
                get("RECON_TIMING_MARGIN_HOURS"),
                float,
                allow_zero=True,
            ),
            stripe_api_base=api_base.rstrip("/") if api_base else None,
            stripe_max_network_retries=parse_positive(
                "STRIPE_MAX_NETWORK_RETRIES",
                get("STRIPE_MAX_NETWORK_RETRIES"),
                int,
                allow_zero=True,
            ),
            stripe_requests_per_second=parse_rate(
                "STRIPE_REQUESTS_PER_SECOND", get("STRIPE_REQUESTS_PER_SECOND")
            ),
            stripe_endpoint_requests_per_second=parse_rate(
                "STRIPE_ENDPOINT_REQUESTS_PER_SECOND", get("STRIPE_ENDPOINT_REQUESTS_PER_SECOND")
            ),
            stripe_timeout_seconds=parse_positive(
                "STRIPE_TIMEOUT_SECONDS", get("STRIPE_TIMEOUT_SECONDS"), float
            ),
            dashboard_url=dashboard.rstrip("/") if dashboard else None,
            env=env,
        )

    def stripe_api_key(self) -> str:
        key = self.env.get("STRIPE_API_KEY", "").strip()
        if not key:
            raise ConfigError(
                "STRIPE_API_KEY", "is not set: put your Stripe secret or restricted key in it"
            )
        return key
