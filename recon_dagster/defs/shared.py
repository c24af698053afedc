"""What every Dagster domain shares, each defined once: asset keys, group, job and check names,
run tags, the errors a run reports as they are, the days a run covers, and the partitions.

The domains (`charges/`, `payouts/`, `close/`) never import each other; what both need is here.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeAlias

import dagster as dg

from recon_dagster.days import day_window, span
from recon_dagster.settings import ConfigError, Settings
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT, account_and_day
from recon_dagster.sources.payments_db import PaymentsDataError
from recon_dagster.sources.stripe_client import StripeDataError, StripeUnavailableError
from recon_dagster.stores.asset_slice import AssetTablesError
from recon_dagster.stores.report_versions import TRIGGER_TAG

# The charges domain: its group, assets, check and job.
CHARGES_GROUP = "reconciliation"
STRIPE_CHARGES = dg.AssetKey("stripe_charges")
DB_PAYMENTS = dg.AssetKey("db_payments")
REPORT = dg.AssetKey("reconciliation_report")
REPORT_CHECK = dg.AssetCheckKey(REPORT, "discrepancy_within_tolerance")
DAILY_JOB = "daily_reconciliation"
CELERY_JOB = "daily_reconciliation_celery"  # the same, each step on a Celery worker

# The payouts domain.
PAYOUTS_GROUP = "payouts"
STRIPE_PAYOUTS = dg.AssetKey("stripe_payouts")
PAYOUT_TRANSACTIONS = dg.AssetKey("stripe_payout_transactions")
PAYOUT_REPORT = dg.AssetKey("payout_reconciliation")
PAYOUT_CHECK = dg.AssetCheckKey(PAYOUT_REPORT, "payouts_reconciled")
PAYOUTS_JOB = "payout_reconciliation_job"

# The month close domain.
CLOSE_GROUP = "month_close"
BALANCE_TRANSACTIONS = dg.AssetKey("stripe_balance_transactions")
ROLLFORWARD = dg.AssetKey("balance_rollforward")
MONTH_CLOSE = dg.AssetKey("month_close")
TIES_OUT_CHECK = dg.AssetCheckKey(ROLLFORWARD, "balance_ties_out")
BALANCE_JOB = "balance_rollforward_job"
MONTH_CLOSE_JOB = "month_close_job"

SYNC_JOB = "sync_missing_payments"
# A job `dg.define_asset_job` returns: Dagster does not export its class to annotate with.
AssetJob: TypeAlias = Any

# A backfill of a long range runs as chunks of this many days per run: few enough runs to start
# quickly, small enough for runs to spread over workers (see README, "Production").
DAYS_PER_RUN = 31

# Run tags: `TRIGGER_TAG` says what started a run (stores/report_versions.py); a run that a late
# change started also names the Stripe events behind it.
EVENTS_TAG = "recon/late_events"
EVENT_COUNT_TAG = "recon/late_event_count"
EVENT_TYPES_TAG = "recon/late_event_types"
# A late change to a locked month: the month, the policy applied, and where it was booked.
LOCKED_MONTH_TAG = "recon/locked_month"
LOCKED_POLICY_TAG = "recon/locked_period_policy"
BOOKED_IN_TAG = "recon/booked_in"
_TAG_LIMIT = 4000  # Dagster tag values are bounded: the first event ids, and how many in all

# Errors about the outside world or its data, reported as they are; anything else is a bug and
# keeps its traceback.
EXPECTED_ERRORS = (
    StripeUnavailableError,
    StripeDataError,
    PaymentsDataError,
    ConfigError,
    AssetTablesError,
)


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """One partition per calendar day in RECON_TIMEZONE from RECON_START_DATE; a DST day has 23
    or 25 hours."""
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(), timezone=settings.timezone
    )


# The accounts of a deployment with many (Connect or multi-entity): a partition per account,
# added by `stripe_accounts_sensor` (or by hand, in the UI or `instance.add_dynamic_partitions`).
ACCOUNTS = dg.DynamicPartitionsDefinition(name="stripe_accounts")
DATE_DIMENSION, MONTH_DIMENSION, ACCOUNT_DIMENSION = "date", "month", "account"


def account_day_partitions(settings: Settings) -> dg.PartitionsDefinition:
    """The days of every daily asset, or with many accounts, days × `stripe_accounts` (keys
    `acct_1|2026-11-01`). One account keeps the plain days, so its partition keys, schedules and
    backfills stay as they were."""
    days = daily_partitions(settings)
    if not settings.accounts.multi:
        return days
    return dg.MultiPartitionsDefinition({DATE_DIMENSION: days, ACCOUNT_DIMENSION: ACCOUNTS})


def account_month_partitions(settings: Settings) -> dg.PartitionsDefinition:
    """The months of the close, × `stripe_accounts` with many accounts (each closed on its
    own)."""
    months = monthly_partitions(settings)
    if not settings.accounts.multi:
        return months
    return dg.MultiPartitionsDefinition({MONTH_DIMENSION: months, ACCOUNT_DIMENSION: ACCOUNTS})


def account_table(asset: dg.AssetKey | str, account: str) -> str:
    """The asset table holding `account`'s rows of `asset` (the asset's own for `default`)."""
    name = asset if isinstance(asset, str) else asset.path[-1]
    return name if account == DEFAULT_ACCOUNT else f"{name}__{account}"


def monthly_partitions(settings: Settings) -> dg.MonthlyPartitionsDefinition:
    """One partition per calendar month in RECON_TIMEZONE, from RECON_START_DATE's month; a month
    is a partition once it has ended."""
    first = settings.start_date.replace(day=1)
    return dg.MonthlyPartitionsDefinition(start_date=first.isoformat(), timezone=settings.timezone)


def daily_asset(
    partitions: dg.PartitionsDefinition, group: str, **spec: Any
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """`dg.asset` for a daily asset of `group`: over `partitions`, a backfill run taking up to
    `DAYS_PER_RUN` days; `spec` is the rest of `dg.asset`'s arguments."""
    policy = dg.BackfillPolicy.multi_run(DAYS_PER_RUN)
    return dg.asset(partitions_def=partitions, backfill_policy=policy, group_name=group, **spec)


@dataclass(frozen=True)
class RunPart:
    """One account's days in a run: its partition keys by day. A backfill range of days ×
    accounts holds one day of many accounts or many days of one (Dagster groups a range by the
    dimension with fewer keys), so a run's parts are each reconciled on their own."""

    account: str
    keys: dict[date, str]  # day -> its partition key (`day`, or `account|day`)

    @property
    def days(self) -> list[date]:
        return sorted(self.keys)

    def window(self, timezone: str) -> tuple[datetime, datetime]:
        """The UTC instants from the first day's start to the last day's end."""
        return day_window(self.days[0], self.days[-1], timezone)


def run_parts(context: dg.AssetExecutionContext) -> list[RunPart]:
    """The accounts a run covers, each with its days (one part, `default`, for one account)."""
    parts: dict[str, dict[date, str]] = {}
    for key in context.partition_keys:
        account, day = account_and_day(key)
        parts.setdefault(account, {})[date.fromisoformat(day)] = key
    return [RunPart(account, keys) for account, keys in sorted(parts.items())]


def account_suffix(account: str) -> str:
    """` (account acct_1)` in messages about another account than the one `default`."""
    return "" if account == DEFAULT_ACCOUNT else f" (account {account})"


def run_failure(
    what: str, exc: Exception, days: list[date], account: str = DEFAULT_ACCOUNT
) -> dg.Failure:
    """The failure of a run over `days`: what could not be done, for which days, and why."""
    return dg.Failure(
        description=f"{what} for {span(days)}{account_suffix(account)}: {exc}",
        metadata={"days": [d.isoformat() for d in days]},
        allow_retries=False,
    )


def late_change_tags(events: str, count: int, types: str) -> dict[str, str]:
    """The tags of a run a late change started: the events (ids, or `mirror:` and the rows'
    ids), how many, and their types."""
    return {
        TRIGGER_TAG: "late_change",
        EVENTS_TAG: events[:_TAG_LIMIT],
        EVENT_COUNT_TAG: str(count),
        EVENT_TYPES_TAG: types[:_TAG_LIMIT],
    }


def late_events(tags: Mapping[str, str]) -> dict[str, Any]:
    """What re-opened a run's day, from its tags: the events, their types and how many; empty
    for a run no late change started."""
    if tags.get(TRIGGER_TAG) != "late_change":
        return {}
    late: dict[str, Any] = {
        "events": [e for e in tags.get(EVENTS_TAG, "").split(",") if e],
        "event_types": tags.get(EVENT_TYPES_TAG, ""),
        "event_count": int(tags.get(EVENT_COUNT_TAG, "0") or 0),
    }
    if tags.get(LOCKED_MONTH_TAG):
        late["locked_month"] = tags[LOCKED_MONTH_TAG]
        late["locked_period_policy"] = tags.get(LOCKED_POLICY_TAG, "")
        if tags.get(BOOKED_IN_TAG):
            late["booked_in"] = tags[BOOKED_IN_TAG]
    return late
