"""The month close's jobs: the daily roll-forward (run by the daily schedule's hour, after the
day has ended) and the monthly close (on the 1st, for the month just ended)."""

import dagster as dg

from recon_dagster.defs.shared import (
    BALANCE_JOB,
    BALANCE_TRANSACTIONS,
    MONTH_CLOSE,
    MONTH_CLOSE_JOB,
    ROLLFORWARD,
    AssetJob,
)


def build_balance_job(days: dg.PartitionsDefinition) -> AssetJob:
    return dg.define_asset_job(
        BALANCE_JOB,
        selection=dg.AssetSelection.assets(BALANCE_TRANSACTIONS, ROLLFORWARD),
        partitions_def=days,
        description="Read one day's balance transactions and roll the Stripe balance forward.",
    )


def build_month_close_job(months: dg.PartitionsDefinition) -> AssetJob:
    return dg.define_asset_job(
        MONTH_CLOSE_JOB,
        selection=dg.AssetSelection.assets(MONTH_CLOSE),
        partitions_def=months,
        description="Close one month: roll-forward tied to Stripe, reconciling items, journal.",
    )


def build_close_schedules(balance_job: AssetJob, close_job: AssetJob) -> list:
    """02:30 daily for yesterday's roll-forward; 04:00 on the 1st for the month just ended."""
    return [
        dg.build_schedule_from_partitioned_job(
            balance_job, hour_of_day=2, minute_of_hour=30, name="balance_rollforward_daily"
        ),
        dg.build_schedule_from_partitioned_job(
            close_job, hour_of_day=4, day_of_month=1, name="month_close_monthly"
        ),
    ]
