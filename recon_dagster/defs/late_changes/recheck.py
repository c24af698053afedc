"""`recheck_recent_days`: the weekly safety net for late changes, for the gap Stripe's 30-day
event retention leaves when `stripe_late_changes` was off."""

from datetime import timedelta

import dagster as dg

from recon_dagster.defs.shared import REPORT, TRIGGER_TAG, AssetJob


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
        reconciled = set(context.instance.get_materialized_partitions(REPORT))
        for back in range(1, days + 1):
            key = (today - timedelta(days=back)).isoformat()
            if key in reconciled:
                yield dg.RunRequest(
                    run_key=f"recheck:{key}:{today.isoformat()}",
                    partition_key=key,
                    tags={TRIGGER_TAG: "schedule"},
                )

    return recheck_recent_days
