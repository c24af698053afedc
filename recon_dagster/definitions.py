"""The code location: `recon_dagster.definitions:defs`, assembled from the modules' objects."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from recon_dagster.alerts.pagerduty import PagerDutyAlertResource
from recon_dagster.alerts.sensors import build_alert_sensors
from recon_dagster.alerts.slack import SlackAlertResource
from recon_dagster.charges.assets import build_assets
from recon_dagster.charges.checks import build_check
from recon_dagster.charges.late_changes import build_late_changes_sensor, build_recheck_schedule
from recon_dagster.charges.schedules import build_daily_job, build_daily_schedule
from recon_dagster.partitions import daily_partitions
from recon_dagster.payouts.assets import build_payout_assets
from recon_dagster.payouts.checks import build_payout_check
from recon_dagster.payouts.schedules import build_payouts_job, build_payouts_schedule
from recon_dagster.resources import (
    BankResource,
    PaymentsDatabaseResource,
    ReconciliationPolicy,
    ReportStoreResource,
    StripeMirrorResource,
    StripeResource,
)
from recon_dagster.settings import Settings
from recon_dagster.stores.io_managers import DuckDBPolarsIOManager
from recon_dagster.stores.postgres_io import PostgresPolarsIOManager
from recon_dagster.sync.job import build_refresh_sensor, sync_missing_payments_job

# A backfill of a long range runs as chunks of this many days per run: few enough runs to start
# quickly, small enough for runs to spread over workers (see README, "Production").
DAYS_PER_RUN = 31


def _secret(name: str, fallback: str) -> str | dg.EnvVar:
    """Secrets stay `EnvVar`s (resolved at run time, never shown); unset ones fall back to the demo."""
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else fallback


def _optional_secret(name: str) -> dg.EnvVar | None:
    """An alert secret as an `EnvVar` when set, else None (that channel is then off)."""
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else None


def alert_resources(settings: Settings) -> dict[str, object]:
    """Slack and PagerDuty, for the alert sensors (recon_dagster/alerts)."""
    return {
        "slack_alerts": SlackAlertResource(
            webhook_url=_optional_secret("SLACK_WEBHOOK_URL"),
            bot_token=_optional_secret("SLACK_BOT_TOKEN"),
            channel=settings.slack_channel,
            dashboard_url=settings.dashboard_url,
        ),
        "pagerduty_alerts": PagerDutyAlertResource(
            routing_key=_optional_secret("PAGERDUTY_ROUTING_KEY"),
            events_url=settings.pagerduty_events_url,
            dashboard_url=settings.dashboard_url,
        ),
    }


def asset_database(settings: Settings) -> str:
    """The DuckDB file holding the two input assets, beside the DuckDB report store.

    A file of its own: DuckDB refuses a second connection to one file with another configuration,
    and dagster-duckdb configures its connections its own way.
    """
    return str(
        Path(settings.report_store_url.removeprefix("duckdb:///")).with_name("assets.duckdb")
    )


def asset_io_manager(settings: Settings) -> dg.ConfigurableIOManagerFactory:
    """Where `stripe_charges` and `db_payments` live: PostgreSQL (schema `recon_assets`) when the
    report store is on PostgreSQL, else a DuckDB file beside the report store."""
    if settings.report_store_url.startswith(("postgresql://", "postgres://")):
        return PostgresPolarsIOManager(
            url=_secret("RECON_REPORT_STORE_URL", settings.report_store_url), schema="recon_assets"
        )
    return DuckDBPolarsIOManager(database=asset_database(settings), schema="recon_assets")


def bank_resource(settings: Settings) -> BankResource:
    """The bank statement table, or an unset one (the payouts' bank step is then skipped)."""
    bank = settings.bank
    if bank is None:
        return BankResource(match_days=settings.bank_match_days)
    url = (
        _secret("RECON_BANK_DATABASE_URL", bank.url)
        if os.environ.get("RECON_BANK_DATABASE_URL", "").strip()
        else _secret("RECON_DATABASE_URL", bank.url)
    )
    return BankResource(
        url=url,
        table=bank.table,
        id_column=bank.id_column,
        amount_column=bank.amount_column,
        amount_unit=bank.amount_unit,
        currency_column=bank.currency_column,
        date_column=bank.date_column,
        reference_column=bank.reference_column,
        match_days=bank.match_days,
        db_timezone=bank.db_timezone,
    )


def build_resources(settings: Settings) -> dict[str, object]:
    table = settings.payments
    return {
        "stripe": StripeResource(
            api_key=_secret("STRIPE_API_KEY", "sk_test_recon_local"),
            api_base=settings.stripe_api_base,
            max_network_retries=settings.stripe_max_network_retries,
            requests_per_second=settings.stripe_requests_per_second,
            endpoint_requests_per_second=settings.stripe_endpoint_requests_per_second,
            timeout_seconds=settings.stripe_timeout_seconds,
        ),
        "payments_db": PaymentsDatabaseResource(
            url=_secret("RECON_DATABASE_URL", table.url),
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
        ),
        "report_store": ReportStoreResource(
            url=_secret("RECON_REPORT_STORE_URL", settings.report_store_url)
        ),
        "policy": ReconciliationPolicy(
            timezone=settings.timezone,
            tolerance_percent=str(settings.tolerance_percent),
            critical_percent=str(settings.critical_percent),
            include_refunds=settings.include_refunds,
            timing_margin_hours=settings.timing_margin_hours,
            auto_sync=settings.auto_sync,
            match_on=settings.match_on,
        ),
        "bank": bank_resource(settings),
        "stripe_mirror": StripeMirrorResource(
            url=_secret("RECON_STRIPE_SOURCE", settings.stripe_source)
            if settings.stripe_source != "api"
            else None,
            mirror_schema=settings.mirror_schema,
            min_lag_minutes=settings.mirror_min_lag_minutes,
            # Comparing with the API needs a real key; without one the spot check is off.
            spot_check=settings.mirror_spot_check
            if os.environ.get("STRIPE_API_KEY", "").strip()
            else 0,
        ),
        "io_manager": asset_io_manager(settings),
        "sync_result_io": dg.mem_io_manager,
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    """Both domains, charges and payouts, over one set of resources and the alert sensors."""
    partitions = daily_partitions(settings.start_date, settings.timezone)
    backfills = dg.BackfillPolicy.multi_run(DAYS_PER_RUN)
    job, payouts_job = build_daily_job(partitions), build_payouts_job(partitions)
    # On by default when a Stripe key is configured: it reads Stripe's events.
    late_changes = build_late_changes_sensor(
        job,
        settings.timezone,
        enabled=bool(os.environ.get("STRIPE_API_KEY", "").strip()),
        interval_seconds=settings.late_changes_interval_seconds,
        payouts_job=payouts_job,
    )
    return dg.Definitions(
        assets=[
            *build_assets(partitions, settings.timezone, backfills),
            *build_payout_assets(partitions, backfills),
        ],
        asset_checks=[build_check(partitions), build_payout_check(partitions)],
        jobs=[job, payouts_job, sync_missing_payments_job],
        schedules=[
            build_daily_schedule(job),
            build_recheck_schedule(job, settings.timezone, settings.recheck_days),
            build_payouts_schedule(
                payouts_job, settings.timezone, settings.bank_match_days, settings.start_date
            ),
        ],
        sensors=[
            build_refresh_sensor(job),
            late_changes,
            *build_alert_sensors(settings.alerts_interval_seconds, settings.alerts_since),
        ],
        resources={**build_resources(settings), **alert_resources(settings)},
    )


defs = build_definitions(Settings.from_env())
