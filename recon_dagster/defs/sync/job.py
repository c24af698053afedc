"""The `sync_missing_payments` job, and the sensor that refreshes the days it repaired.

Launch it from the launchpad with a day or a range (the stored reports name what is missing),
or explicit ids, and `dry_run` to see what it would do. After a real sync, the sensor
re-materializes those days so the UI and the check show what is left.
"""

from datetime import date

import dagster as dg

from recon_dagster.days import day_window, days_between
from recon_dagster.defs.resources import (
    PaymentsDatabaseResource,
    ReconciliationPolicy,
    ReportStoreResource,
    StripeResource,
)
from recon_dagster.defs.shared import DAILY_JOB, SYNC_JOB, AssetJob
from recon_dagster.sync.repair import sync_payments


class SyncConfig(dg.Config):
    start: str  # first day, YYYY-MM-DD
    end: str | None = None  # last day, inclusive
    ids: list[str] = []  # explicit charge ids, instead of the days' missing payments
    dry_run: bool = False


def sync_days(config: SyncConfig) -> list[date]:
    first = date.fromisoformat(config.start)
    return days_between(first, date.fromisoformat(config.end) if config.end else first)


# The op's result is small and read from its metadata in the UI: keep it in memory, not in the
# DuckDB tables the assets use.
@dg.op(
    description="Insert the payments Stripe collected but the payments table lacks.",
    out=dg.Out(dict, io_manager_key="sync_result_io"),
)
def sync_missing_payments_op(
    context: dg.OpExecutionContext,
    config: SyncConfig,
    stripe: StripeResource,
    payments_db: PaymentsDatabaseResource,
    report_store: ReportStoreResource,
    policy: ReconciliationPolicy,
) -> dict:
    store = report_store.store()
    days = sync_days(config)
    ids = list(config.ids)
    if not ids:
        for day in days:
            report = store.latest(day)
            if report is None or report.status == "error":
                raise dg.Failure(
                    f"No reconciliation report for {day}: materialize reconciliation_report for it "
                    "first."
                )
            ids += report.missing_in_database
    result = sync_payments(
        ids,
        client=stripe.client(),
        table=payments_db.mapping(),
        store=store,
        dry_run=config.dry_run,
        run_id=context.run_id,
        day=days[0],
        match_on=policy.match_on,
        window=day_window(days[0], days[0], policy.timezone),
    )
    body = result.to_json_dict()
    context.add_output_metadata(
        {
            "synced": body["synced"],
            "failed": len(body["failed"]),
            "already_present": len(body["skipped"]),
            "would_sync": len(body["would_sync"]),
            "dry_run": config.dry_run,
            "details": dg.MetadataValue.json(body),
        }
    )
    if result.failed:
        context.log.warning(
            f"{len(result.failed)} payment(s) could not be synced: "
            + "; ".join(f"{o.payment_id}: {o.reason}" for o in result.failed[:10])
        )
    return body


@dg.job(
    name=SYNC_JOB,
    description="Sync missing payments from Stripe into the payments table (see README).",
)
def sync_missing_payments_job():
    sync_missing_payments_op()


def build_refresh_sensor(daily_job: AssetJob) -> dg.SensorDefinition:
    """After a real sync, re-reconcile its days so reports and checks show what is left."""

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[sync_missing_payments_job],
        request_jobs=[daily_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        name="refresh_after_sync",
    )
    def refresh_after_sync(context: dg.RunStatusSensorContext):
        ops = context.dagster_run.run_config.get("ops")
        op = ops.get("sync_missing_payments_op") if isinstance(ops, dict) else None
        config = op.get("config") if isinstance(op, dict) else None
        if not config or config.get("dry_run"):
            return dg.SkipReason("dry run: nothing changed")
        return [
            dg.RunRequest(
                run_key=f"{context.dagster_run.run_id}:{d}",
                job_name=DAILY_JOB,
                partition_key=d.isoformat(),
            )
            for d in sync_days(SyncConfig(**config))
        ]

    return refresh_after_sync
