"""The daily job and its 02:00 schedule (the seed's cron), in the reconciliation time zone."""

import dagster as dg

from recon_dagster.defs.shared import CHARGES_GROUP, DAILY_JOB, AssetJob


def build_daily_job(partitions_def: dg.PartitionsDefinition) -> AssetJob:
    """The three assets and the check, for one day; the schedule and backfills both run it."""
    return dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.groups(CHARGES_GROUP),
        partitions_def=partitions_def,
        description="Reconcile one day: Stripe charges, database payments, the report and its "
        "check.",
    )


def build_daily_schedule(job: AssetJob):
    """At 02:00 in the partitions' time zone, the previous day's partition."""
    return dg.build_schedule_from_partitioned_job(
        job, hour_of_day=2, minute_of_hour=0, default_status=dg.DefaultScheduleStatus.RUNNING
    )
