"""`recheck_recent_days`: the weekly safety net for late changes, for the gap Stripe's 30-day
event retention leaves when `stripe_late_changes` was off."""

from datetime import timedelta

import dagster as dg

from recon_dagster.defs.shared import REPORT, TRIGGER_TAG, AssetJob
from recon_dagster.settings.accounts import account_and_day


def build_recheck_schedule(job: AssetJob, timezone: str, days: int) -> dg.ScheduleDefinition:
    """Weekly (Sunday 04:00), off by default: re-materialize the last `days` reconciled days
    (RECON_RECHECK_DAYS)."""

    @dg.schedule(
        job=job,
        cron_schedule="0 4 * * 0",
        execution_timezone=timezone,
        name="recheck_recent_days",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Safety net for late changes: re-reconcile the last {days} days every week.",
    )
    def recheck_recent_days(context: dg.ScheduleEvaluationContext):
        today = context.scheduled_execution_time.date()
        recent = {(today - timedelta(days=back)).isoformat() for back in range(1, days + 1)}
        # Every account's reconciled days among them (a key is `day`, or `account|day`).
        reconciled = context.instance.get_materialized_partitions(REPORT)
        for key in sorted(reconciled, key=lambda k: account_and_day(k)[::-1], reverse=True):
            if account_and_day(key)[1] in recent:
                yield dg.RunRequest(
                    run_key=f"recheck:{key}:{today.isoformat()}",
                    partition_key=key,
                    tags={TRIGGER_TAG: "schedule"},
                )

    return recheck_recent_days
