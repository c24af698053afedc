"""The code location: `recon_dagster.definitions:defs`, assembled from the objects the `defs/`
modules define, over one set of resources.

`defs` is built when first asked for (`dagster dev`, `dagster asset materialize -m
recon_dagster.definitions`, `from recon_dagster.definitions import defs`), from the environment
at that moment, and never when another module is imported; `build_defs(settings)` builds them
from given settings (tests, the demo, benchmarks).
"""

from pathlib import Path
from typing import Any

import dagster as dg

from recon_dagster.defs.accounts.sensor import build_accounts_sensor
from recon_dagster.defs.alerts.resources import PagerDutyAlertResource, SlackAlertResource
from recon_dagster.defs.alerts.sensors import build_alert_sensors
from recon_dagster.defs.charges.assets import build_charges_assets
from recon_dagster.defs.charges.checks import build_charges_check
from recon_dagster.defs.charges.jobs import build_daily_job, build_daily_schedule
from recon_dagster.defs.close.assets import build_close_assets
from recon_dagster.defs.close.checks import build_close_checks
from recon_dagster.defs.close.jobs import (
    build_balance_job,
    build_close_schedules,
    build_month_close_job,
)
from recon_dagster.defs.distributed.celery_job import build_celery_job
from recon_dagster.defs.late_changes.recheck import build_recheck_schedule
from recon_dagster.defs.late_changes.sensor import build_late_changes_sensor
from recon_dagster.defs.payouts.assets import build_payout_assets
from recon_dagster.defs.payouts.checks import build_payout_check
from recon_dagster.defs.payouts.jobs import build_payouts_job, build_payouts_schedule
from recon_dagster.defs.resources import (
    AssetTablesResource,
    BankResource,
    MonthCloseResource,
    PaymentsDatabaseResource,
    ReconciliationPolicy,
    ReportStoreResource,
    StripeMirrorResource,
    StripeResource,
)
from recon_dagster.defs.shared import (
    CELERY_JOB,
    account_day_partitions,
    account_month_partitions,
)
from recon_dagster.defs.step_processes import step_executor
from recon_dagster.defs.sync.job import build_refresh_sensor, sync_missing_payments_job
from recon_dagster.frozen_imports import gc_paused
from recon_dagster.money import to_major
from recon_dagster.settings import Settings, variables
from recon_dagster.sources.stripe_budget import budget_beside

# The key the demo and tests use when STRIPE_API_KEY is unset (the local Stripe server's).
LOCAL_API_KEY = "sk_test_recon_local"


def build_defs(settings: Settings) -> dg.Definitions:
    """The three domains, charges, payouts and the month close, the late-change sensor, the
    alerts and the repair job, over one set of resources."""
    # The days and months, × accounts when there are many (`stripe_accounts`).
    days, months = account_day_partitions(settings), account_month_partitions(settings)
    multi = settings.accounts.multi
    daily_job, payouts_job = build_daily_job(days), build_payouts_job(days)
    balance_job, close_job = build_balance_job(days), build_month_close_job(months)
    return dg.Definitions(
        assets=[
            *build_charges_assets(days, settings.timezone),
            *build_payout_assets(days),
            *build_close_assets(days, months, settings.timezone),
        ],
        asset_checks=[
            build_charges_check(days),
            build_payout_check(days),
            *build_close_checks(days, months),
        ],
        jobs=[
            daily_job,
            build_celery_job(days, celery_broker(settings)),
            payouts_job,
            balance_job,
            close_job,
            *([] if multi else [sync_missing_payments_job]),
        ],
        schedules=[
            *build_close_schedules(balance_job, close_job),
            build_daily_schedule(daily_job),
            build_recheck_schedule(daily_job, settings.timezone, settings.recheck_days),
            build_payouts_schedule(
                payouts_job,
                settings.timezone,
                settings.bank_match_days,
                settings.start_date,
                multi,
            ),
        ],
        sensors=[
            # With many accounts, the accounts' sensor adds their partitions, and the repair
            # works through RECON_AUTO_SYNC or `recon-dagster sync --account` (see README, "Many
            # Stripe accounts"); the job and its refresh work on the one account's days.
            *(
                [build_accounts_sensor(settings.accounts, settings.accounts_interval_seconds)]
                if multi
                else [build_refresh_sensor(daily_job)]
            ),
            # On by default when a Stripe key is configured: it reads Stripe's events.
            build_late_changes_sensor(
                daily_job,
                payouts_job,
                close_job,
                settings.timezone,
                enabled=settings.is_set("STRIPE_API_KEY") or bool(settings.accounts.setting.keys),
                interval_seconds=settings.late_changes_interval_seconds,
                multi=multi,
            ),
            *build_alert_sensors(settings.alerts_interval_seconds, settings.alerts_since),
        ],
        resources=build_resources(settings),
        executor=step_executor,
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    """Every resource, from `settings`; secrets as `EnvVar`s (resolved at run time, never
    shown)."""

    def secret(name: str, fallback: Any) -> Any:
        """The variable as an `EnvVar` when set, else `fallback` (the demo's, or None: off)."""
        return dg.EnvVar(name) if settings.is_set(name) else fallback

    table, bank = settings.payments, settings.bank
    store_url = secret("RECON_REPORT_STORE_URL", settings.report_store_url)
    return {
        "stripe": StripeResource(
            api_key=secret("STRIPE_API_KEY", LOCAL_API_KEY),
            api_base=settings.stripe_api_base,
            max_network_retries=settings.stripe_max_network_retries,
            requests_per_second=settings.stripe_requests_per_second,
            endpoint_requests_per_second=settings.stripe_endpoint_requests_per_second,
            timeout_seconds=settings.stripe_timeout_seconds,
            connect=settings.accounts.connect,
            accounts=variables.text("RECON_STRIPE_ACCOUNTS", settings.env),
            budget_url=stripe_budget_url(settings, store_url),
        ),
        "stripe_mirror": StripeMirrorResource(
            url=secret("RECON_STRIPE_SOURCE", settings.stripe_source)
            if settings.stripe_source != "api"
            else None,
            mirror_schema=settings.mirror_schema,
            min_lag_minutes=settings.mirror_min_lag_minutes,
            # Comparing with the API needs a real key; without one the spot check is off.
            spot_check=settings.mirror_spot_check if settings.is_set("STRIPE_API_KEY") else 0,
        ),
        "payments_db": PaymentsDatabaseResource(
            url=secret("RECON_DATABASE_URL", table.url),
            table=table.table,
            id_column=table.id_column,
            amount_column=table.amount_column,
            amount_unit=table.amount_unit,
            currency_column=table.currency_column,
            status_column=table.status_column,
            created_at_column=table.created_at_column,
            refunded_column=table.refunded_column,
            paid_statuses=list(table.paid_statuses),
            db_timezone=table.db_timezone,
            account_column=table.account_column,
        ),
        "bank": BankResource(match_days=settings.bank_match_days)
        if bank is None
        else BankResource(
            # Without a URL of its own the bank table lives beside the payments.
            url=secret("RECON_BANK_DATABASE_URL", bank.url)
            if settings.is_set("RECON_BANK_DATABASE_URL")
            else secret("RECON_DATABASE_URL", bank.url),
            table=bank.table,
            id_column=bank.id_column,
            amount_column=bank.amount_column,
            amount_unit=bank.amount_unit,
            currency_column=bank.currency_column,
            date_column=bank.date_column,
            reference_column=bank.reference_column,
            match_days=bank.match_days,
            db_timezone=bank.db_timezone,
            account_column=bank.account_column,
        ),
        "report_store": ReportStoreResource(url=store_url),
        "asset_tables": AssetTablesResource(url=asset_tables_url(settings, store_url)),
        "policy": ReconciliationPolicy(
            timezone=settings.timezone,
            tolerance_percent=str(settings.tolerance_percent),
            critical_percent=str(settings.critical_percent),
            include_refunds=settings.include_refunds,
            timing_margin_hours=settings.timing_margin_hours,
            auto_sync=settings.auto_sync,
            match_on=settings.match_on,
        ),
        "slack_alerts": SlackAlertResource(
            webhook_url=secret("SLACK_WEBHOOK_URL", None),
            bot_token=secret("SLACK_BOT_TOKEN", None),
            channel=settings.slack_channel,
            dashboard_url=settings.dashboard_url,
        ),
        "pagerduty_alerts": PagerDutyAlertResource(
            routing_key=secret("PAGERDUTY_ROUTING_KEY", None),
            events_url=settings.pagerduty_events_url,
            dashboard_url=settings.dashboard_url,
        ),
        "month_close": MonthCloseResource(
            start_date=settings.start_date.isoformat(),
            opening_balances=",".join(
                f"{c}={to_major(v, c)}" for c, v in (settings.opening_balances or {}).items()
            ),
            gl_mapping=settings.gl_mapping,
            locked_period_policy=settings.locked_period_policy,
        ),
        # The repair op's small result, read from its metadata in the UI.
        "sync_result_io": dg.mem_io_manager,
    }


def celery_broker(settings: Settings) -> Any:
    """The Celery broker: read from RECON_CELERY_BROKER_URL at run time when it is set (it may
    hold a password, so its value is never put in the definitions), else the local default."""
    if settings.is_set("RECON_CELERY_BROKER_URL"):
        return {"env": "RECON_CELERY_BROKER_URL"}
    return variables.default("RECON_CELERY_BROKER_URL")


def stripe_budget_url(settings: Settings, store_url: Any) -> Any:
    """Where every process shares the Stripe budgets: RECON_STRIPE_BUDGET_URL (an `EnvVar`: it
    may hold a password), else beside the report store (the store's own `EnvVar` when that is
    PostgreSQL); None when it is `off`."""
    if settings.stripe_budget_url == "off":
        return None
    if settings.stripe_budget_url is not None:
        if settings.stripe_budget_url.startswith("sqlite:///"):
            return settings.stripe_budget_url  # a file, made absolute: no password in it
        return dg.EnvVar("RECON_STRIPE_BUDGET_URL")
    beside = budget_beside(settings.report_store_url)
    return store_url if beside == settings.report_store_url else beside


def asset_tables_url(settings: Settings, store_url: Any) -> Any:
    """Where the input assets keep their rows: the PostgreSQL report store (schema
    `recon_assets`), else a DuckDB file of its own beside the DuckDB report store (one writer
    per DuckDB file: the store's connections and these must not share one)."""
    if settings.report_store_url.startswith(("postgresql://", "postgres://")):
        return store_url
    path = Path(settings.report_store_url.removeprefix("duckdb:///")).with_name("assets.duckdb")
    return f"duckdb:///{path}"


def daily_reconciliation_celery() -> dg.JobDefinition:
    """`daily_reconciliation_celery` as this code location builds it from the environment, for
    `dg.reconstructable`: a Celery worker rebuilds the job it runs a step of by importing this
    function."""
    return build_defs(Settings.from_env()).resolve_job_def(CELERY_JOB)


# `defs` is built on first access (PEP 562), from the environment at that moment, then kept like
# any module attribute: once per process, as Dagster's loaders expect. Loading (or reloading) the
# module forgets a built one.
globals().pop("defs", None)


def __getattr__(name: str) -> Any:
    if name == "defs":
        # What the code location's process has built so far (Dagster, the libraries, these
        # definitions) lives as long as it does: built with the GC paused and then moved to its
        # permanent generation, it is no longer walked by every full collection of the run,
        # sensor tick or step that follows. A day's `dagster asset materialize`: ~20% less CPU
        # with the step forkserver's freeze (`defs/forkserver_ready.py`).
        with gc_paused():
            built = globals()["defs"] = build_defs(Settings.from_env())
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # Dagster finds the code location's Definitions among the module's names.
    return sorted([*globals(), "defs"])
