"""The payouts job, and its morning schedule: yesterday's arrivals, and the days before it whose
deposits may still be arriving (RECON_BANK_MATCH_DAYS), so `awaiting_bank` turns into matched or
`missing_in_bank` without anyone re-running it."""

from datetime import date, timedelta

import dagster as dg

from recon_dagster.defs.shared import ACCOUNTS, PAYOUTS_GROUP, PAYOUTS_JOB, AssetJob
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT, partition_key


def build_payouts_job(partitions_def: dg.PartitionsDefinition) -> AssetJob:
    return dg.define_asset_job(
        PAYOUTS_JOB,
        selection=dg.AssetSelection.groups(PAYOUTS_GROUP),
        partitions_def=partitions_def,
        description="Reconcile one arrival date's payouts: Stripe, the payments table and the "
        "bank.",
    )


def build_payouts_schedule(
    job: AssetJob, timezone_name: str, match_days: int, start_date: date, multi: bool = False
) -> dg.ScheduleDefinition:
    """03:00 every day: the arrival dates still within the bank window, for every account (the
    partitions of `stripe_accounts` when there are many)."""

    @dg.schedule(
        job=job,
        cron_schedule="0 3 * * *",
        execution_timezone=timezone_name,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        name="payouts_daily",
        description=f"03:00: yesterday's payouts, and the {match_days} day(s) before still within "
        "the bank window.",
    )
    def payouts_daily(context: dg.ScheduleEvaluationContext):
        yesterday = context.scheduled_execution_time.date() - timedelta(days=1)
        accounts = (
            context.instance.get_dynamic_partitions(ACCOUNTS.name or "")
            if multi
            else [DEFAULT_ACCOUNT]
        )
        for account in accounts:
            for back in range(match_days + 1):
                day = yesterday - timedelta(days=back)
                if day >= start_date:
                    key = partition_key(account, day.isoformat(), multi)
                    yield dg.RunRequest(run_key=f"{key}@{yesterday.isoformat()}", partition_key=key)

    return payouts_daily
