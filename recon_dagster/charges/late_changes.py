"""`stripe_late_changes`: re-open a reconciled day when Stripe changes it afterwards.

A refund a week later, a dispute lost a month later, a late capture: the stored report of the
charge's day no longer matches the money. The sensor reads Stripe's events after its cursor and
requests one re-materialization per affected day that has a report already (never-materialized
days stay the user's to backfill), tagged `recon/trigger=late_change` with the events behind it.
At least once: the cursor moves only with the requests it returns, and a run key per (day, events)
keeps a re-read event from re-opening a day twice. Given the payouts job, `payout.*` events
re-open their payout's arrival date the same way. `recheck_recent_days` is the weekly safety
net for the gap Stripe's 30-day event retention leaves when the sensor was off.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from recon_dagster.resources import StripeMirrorResource, StripeResource
from recon_dagster.sources import stripe_events, stripe_mirror
from recon_dagster.sources.stripe_events import Cursor

REPORT_KEY = dg.AssetKey("reconciliation_report")
PAYOUT_REPORT_KEY = dg.AssetKey("payout_reconciliation")
EVENTS_TAG = "recon/late_events"
COUNT_TAG, TYPES_TAG = "recon/late_event_count", "recon/late_event_types"
_TAG_LIMIT = 4000  # Dagster tag values are bounded: the first event ids, and how many in all


def build_late_changes_sensor(
    job: dg.UnresolvedAssetJobDefinition,
    timezone: str,
    *,
    enabled: bool,
    interval_seconds: int = 300,
    payouts_job: dg.UnresolvedAssetJobDefinition | None = None,
) -> dg.SensorDefinition:
    """`payouts_job`: also re-open the arrival dates of payouts that `payout.*` events changed."""

    @dg.sensor(
        name="stripe_late_changes",
        jobs=[job, *([payouts_job] if payouts_job else [])],
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING
        if enabled
        else dg.DefaultSensorStatus.STOPPED,
        description="Re-materializes reconciled days that Stripe changed afterwards (refunds, "
        "disputes, captures; "
        "payouts that failed or moved), from GET /v1/events.",
    )
    def stripe_late_changes(
        context: dg.SensorEvaluationContext,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
    ):
        if stripe_mirror.enabled:
            return _mirror_tick(
                context,
                stripe_mirror,
                timezone,
                job.name,
                payouts_job.name if payouts_job else None,
            )
        cursor = Cursor.loads(context.cursor)
        if (
            cursor is None
        ):  # first tick: from now on (history is the safety net's, see recheck_recent_days)
            start = Cursor(int(time.time()))
            return dg.SensorResult(
                cursor=start.dumps(),
                skip_reason=dg.SkipReason(
                    f"Started: reading Stripe events from {start.created} on. Stripe keeps events "
                    f"{stripe_events.RETENTION_DAYS} days; "
                    "if this sensor is off longer, days may change unseen: run recheck_recent_days."
                ),
            )
        client = stripe.client()
        now = int(time.time())
        changes = stripe_events.read_changes(client, cursor)
        gap = ""
        if now - cursor.last_read > stripe_events.RETENTION_DAYS * 86_400:
            gap = (
                " Stripe's events were last read more than Stripe's "
                f"{stripe_events.RETENTION_DAYS}-day event retention ago: "
                "changes in the gap may be lost; run recheck_recent_days."
            )
        if not changes:
            return dg.SensorResult(
                cursor=cursor.advanced([], read_at=now).dumps(),
                skip_reason=dg.SkipReason(f"No new Stripe events.{gap}"),
            )
        domains = [
            (REPORT_KEY, job.name, "late_change", stripe_events.days_of(client, changes, timezone))
        ]
        if payouts_job is not None:
            domains.append(
                (
                    PAYOUT_REPORT_KEY,
                    payouts_job.name,
                    "late_change:payouts",
                    stripe_events.payout_days_of(changes),
                )
            )
        requests, untouched = [], 0
        for report_key, job_name, prefix, by_day in domains:
            reconciled = set(context.instance.get_materialized_partitions(report_key))
            for day, day_changes in sorted(by_day.items()):
                if day.isoformat() not in reconciled:
                    untouched += 1
                    continue
                ids = sorted(c.event_id for c in day_changes)
                digest = hashlib.sha1(",".join(ids).encode()).hexdigest()[
                    :16
                ]  # the same events never twice
                requests.append(
                    _request(
                        job_name,
                        f"{prefix}:{day.isoformat()}:{digest}",
                        day.isoformat(),
                        ",".join(ids),
                        len(ids),
                        ",".join(sorted({c.type for c in day_changes})),
                    )
                )
        skip = None
        if not requests:
            skip = dg.SkipReason(
                f"{len(changes)} event(s) read; none for a reconciled day ({untouched} day(s) "
                f"never materialized).{gap}"
            )
        # Debug: the tick's own log (in the UI) keeps it; a console (the daemon's, the demo's) stays
        # quiet.
        context.log.debug(f"{len(changes)} Stripe event(s) read; re-opening {len(requests)} day(s)")
        return dg.SensorResult(
            run_requests=requests,
            cursor=cursor.advanced(changes, read_at=now).dumps(),
            skip_reason=skip,
        )

    return stripe_late_changes


def _request(
    job_name: str, run_key: str, partition: str, events: str, count: int, types: str
) -> dg.RunRequest:
    """One re-materialization of a day, tagged with what re-opened it (read back by `late_events`)."""
    return dg.RunRequest(
        job_name=job_name,
        run_key=run_key,
        partition_key=partition,
        tags={
            "recon/trigger": "late_change",
            EVENTS_TAG: events[:_TAG_LIMIT],
            COUNT_TAG: str(count),
            TYPES_TAG: types[:_TAG_LIMIT],
        },
    )


def late_events(tags: Mapping[str, str]) -> dict:
    """What re-opened a run's day, from its tags: the events (ids, or `mirror:` and the rows' ids),
    their types and how many; empty for a run no late change started."""
    if tags.get("recon/trigger") != "late_change":
        return {}
    return {
        "events": [e for e in tags.get(EVENTS_TAG, "").split(",") if e],
        "event_types": tags.get(TYPES_TAG, ""),
        "event_count": int(tags.get(COUNT_TAG, "0") or 0),
    }


def _mirror_tick(
    context: dg.SensorEvaluationContext,
    mirror: StripeMirrorResource,
    timezone: str,
    job_name: str,
    payouts_job_name: str | None,
) -> dg.SensorResult:
    """With a Stripe mirror as the source, a day is re-opened when rows of that day were synced
    after the cursor (the newest sync time already handled): charges by their created day, and
    payouts (given the payouts job) by their arrival date."""
    since = (
        datetime.fromisoformat(context.cursor)
        if context.cursor and context.cursor[:1].isdigit()
        else None
    )
    if since is None:
        now = datetime.now(UTC)
        return dg.SensorResult(
            cursor=now.isoformat(),
            skip_reason=dg.SkipReason(
                f"Started: reading mirror rows synced after {now.isoformat()}."
            ),
        )
    rows, newest = stripe_mirror.synced_since(mirror.mirror(), since)
    zone = ZoneInfo(timezone)
    charge_days: dict[str, set[str]] = {}
    for charge, created in rows:
        charge_days.setdefault(
            datetime.fromtimestamp(created, UTC).astimezone(zone).date().isoformat(), set()
        ).add(charge)
    domains = [(REPORT_KEY, job_name, "late_change", charge_days)]
    if payouts_job_name is not None:
        payouts, payouts_newest = mirror.payouts_synced_since(since)
        payout_days: dict[str, set[str]] = {}
        for payout, arrival in payouts:
            payout_days.setdefault(arrival.isoformat(), set()).add(payout)
        domains.append((PAYOUT_REPORT_KEY, payouts_job_name, "late_change:payouts", payout_days))
        rows = [*rows, *payouts]
        newest = max((t for t in (newest, payouts_newest) if t is not None), default=None)
    if not rows or newest is None:
        return dg.SensorResult(
            cursor=context.cursor,
            skip_reason=dg.SkipReason("No mirror rows synced since the last tick."),
        )
    requests = []
    for report_key, job, prefix, days in domains:
        reconciled = set(context.instance.get_materialized_partitions(report_key))
        requests += [
            _request(
                job,
                f"{prefix}:{day}:mirror:{newest.isoformat()}",
                day,
                "mirror:" + ",".join(sorted(ids)),
                len(ids),
                "mirror_sync",
            )
            for day, ids in sorted(days.items())
            if day in reconciled
        ]
    return dg.SensorResult(
        run_requests=requests,
        cursor=newest.isoformat(),
        skip_reason=None
        if requests
        else dg.SkipReason(f"{len(rows)} row(s) synced; none of a reconciled day."),
    )


def build_recheck_schedule(
    job: dg.UnresolvedAssetJobDefinition, timezone: str, days: int
) -> dg.ScheduleDefinition:
    """Weekly (Sunday 04:00), off by default: re-materialize the last `days` days
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
        reconciled = set(context.instance.get_materialized_partitions(REPORT_KEY))
        for back in range(1, days + 1):
            key = (today - timedelta(days=back)).isoformat()
            if key in reconciled:
                yield dg.RunRequest(
                    run_key=f"recheck:{key}:{today.isoformat()}",
                    partition_key=key,
                    tags={"recon/trigger": "schedule"},
                )

    return recheck_recent_days
