"""`stripe_late_changes`: re-open a reconciled day when Stripe changes it afterwards.

A refund a week later, a dispute lost a month later, a late capture: the stored report of the
charge's day no longer matches the money. The sensor reads Stripe's events after its cursor and
requests one re-materialization per affected day that has a report already (never-materialized
days stay the user's to backfill), tagged `recon/trigger=late_change` with the events behind it.
At least once: the cursor moves only with the requests it returns, and a run key per (day,
events) keeps a re-read event from re-opening a day twice. `payout.*` events re-open their
payout's arrival date in the payouts domain the same way. A day of a locked month follows
RECON_LOCKED_PERIOD_POLICY (`locked_periods.py`). With many accounts, each account's events are
read with its own client (Connect: its `Stripe-Account`), after its own cursor, and re-open that
account's days.
"""

import hashlib
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import stripe

from recon_dagster.days import today
from recon_dagster.defs.late_changes import locked_periods
from recon_dagster.defs.resources import (
    MonthCloseResource,
    ReportStoreResource,
    StripeMirrorResource,
    StripeResource,
)
from recon_dagster.defs.shared import (
    ACCOUNTS,
    EXPECTED_ERRORS,
    PAYOUT_REPORT,
    REPORT,
    AssetJob,
    late_change_tags,
)
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT, PLATFORM_ACCOUNT
from recon_dagster.sources import stripe_events, stripe_mirror, stripe_mirror_payouts
from recon_dagster.sources.stripe_events import Change, Cursor
from recon_dagster.stores.close_store import CloseStore

# (the domain's report, its job, the run keys' prefix, the touched days -> what touched them)
Domain = tuple[dg.AssetKey, str, str, dict]


def build_late_changes_sensor(
    job: AssetJob,
    payouts_job: AssetJob,
    close_job: AssetJob,
    timezone: str,
    *,
    enabled: bool,
    interval_seconds: int,
    multi: bool = False,
) -> dg.SensorDefinition:
    """`enabled`: running by default (a Stripe key is configured); `interval_seconds`:
    RECON_LATE_CHANGES_INTERVAL_SECONDS; `close_job` re-closes a month a late change re-opens
    (see `locked_periods`); `multi`: every partition of `stripe_accounts`, each on its own."""

    @dg.sensor(
        name="stripe_late_changes",
        jobs=[job, payouts_job, close_job],
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING
        if enabled
        else dg.DefaultSensorStatus.STOPPED,
        description="Re-materializes reconciled days that Stripe changed afterwards (refunds, "
        "disputes, captures; payouts that failed or moved), from GET /v1/events.",
    )
    def stripe_late_changes(
        context: dg.SensorEvaluationContext,
        stripe: StripeResource,
        stripe_mirror: StripeMirrorResource,
        report_store: ReportStoreResource,
        month_close: MonthCloseResource,
    ):
        def locked(requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
            if not requests:
                return requests

            def closes(account: str) -> CloseStore:
                return CloseStore(report_store.store(account))

            policy = month_close.locked_period_policy
            return locked_periods.apply(requests, closes, policy, today(timezone), close_job.name)

        if multi:
            tick = _accounts_tick(context, stripe, timezone, job.name, payouts_job.name)
            return dg.SensorResult(
                run_requests=locked(list(tick.run_requests or [])),
                cursor=tick.cursor,
                skip_reason=tick.skip_reason,
            )

        if stripe_mirror.enabled:
            tick = _mirror_tick(context, stripe_mirror, timezone, job.name, payouts_job.name)
            return dg.SensorResult(
                run_requests=locked(list(tick.run_requests or [])),
                cursor=tick.cursor,
                skip_reason=tick.skip_reason,
            )
        cursor = Cursor.loads(context.cursor)
        if cursor is None:  # first tick: from now on (history is recheck_recent_days')
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
        requests, untouched = _requests_for(
            context, client, changes, timezone, job.name, payouts_job.name, DEFAULT_ACCOUNT
        )
        skip = None
        if not requests:
            skip = dg.SkipReason(
                f"{len(changes)} event(s) read; none for a reconciled day ({untouched} day(s) "
                f"never materialized).{gap}"
            )
        # Debug: the tick's own log (in the UI) keeps it; a console (the daemon's, the demo's)
        # stays quiet.
        context.log.debug(f"{len(changes)} Stripe event(s) read; re-opening {len(requests)} day(s)")
        return dg.SensorResult(
            run_requests=locked(requests),
            cursor=cursor.advanced(changes, read_at=now).dumps(),
            skip_reason=skip,
        )

    return stripe_late_changes


def _requests_for(
    context: dg.SensorEvaluationContext,
    client: stripe.StripeClient,
    changes: list[Change],
    timezone: str,
    job_name: str,
    payouts_job_name: str,
    account: str,
) -> tuple[list[dg.RunRequest], int]:
    """The re-materializations `account`'s `changes` ask for (its reconciled days only), and how
    many touched days were never materialized. On a Connect platform, a destination charge's
    change re-opens its destination account's day (that sale is reconciled there)."""
    if account == PLATFORM_ACCOUNT:
        changes = stripe_events.with_destinations(client, changes)
    by_account: dict[str, list[Change]] = {}
    for change in changes:
        by_account.setdefault(change.destination or account, []).append(change)
    domains: list[tuple[str, Domain]] = [
        (
            owner,
            (REPORT, job_name, "late_change", stripe_events.days_of(client, owned, timezone)),
        )
        for owner, owned in by_account.items()
    ]
    domains.append(
        (
            account,
            (
                PAYOUT_REPORT,
                payouts_job_name,
                "late_change:payouts",
                stripe_events.payout_days_of(changes),
            ),
        )
    )
    requests, untouched = [], 0
    for owner, (report, job, prefix, by_day) in domains:
        reconciled = _reconciled(context, report)
        for day, day_changes in sorted(by_day.items()):
            key = day.isoformat() if owner == DEFAULT_ACCOUNT else f"{owner}|{day}"
            if key not in reconciled:
                untouched += 1
                continue
            requests.append(_event_request(job, prefix, key, day_changes))
    return requests, untouched


def _accounts_tick(
    context: dg.SensorEvaluationContext,
    stripe: StripeResource,
    timezone: str,
    job_name: str,
    payouts_job_name: str,
) -> dg.SensorResult:
    """Every account's events after its own cursor (`{"accounts": {account: cursor}}`): an
    account seen for the first time starts from now; one whose events cannot be read keeps its
    cursor, named in the tick, while the others move on."""
    try:
        cursors = json.loads(context.cursor or "{}").get("accounts", {})
    except (ValueError, AttributeError):
        cursors = {}
    now = int(time.time())
    requests: list[dg.RunRequest] = []
    read, started, failed = 0, [], []
    for account in context.instance.get_dynamic_partitions(ACCOUNTS.name or ""):
        cursor = Cursor.loads(cursors.get(account))
        if cursor is None:
            cursors[account] = Cursor(now).dumps()
            started.append(account)
            continue
        try:
            client = stripe.client(account)
            changes = stripe_events.read_changes(client, cursor)
            found, _ = _requests_for(
                context, client, changes, timezone, job_name, payouts_job_name, account
            )
        except EXPECTED_ERRORS as exc:
            failed.append(f"{account}: {exc}")
            continue
        read += len(changes)
        requests += found
        cursors[account] = cursor.advanced(changes, read_at=now).dumps()
    for problem in failed:
        context.log.warning(f"Could not read Stripe events of {problem}")
    said = [f"{read} event(s) read over {len(cursors)} account(s)"]
    if started:
        said.append(f"started reading {len(started)} new account(s) from now")
    if failed:
        said.append(f"{len(failed)} account(s) could not be read, retried next tick")
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps({"v": 1, "accounts": cursors}),
        skip_reason=None if requests else dg.SkipReason("; ".join(said) + "."),
    )


def _reconciled(context: dg.SensorEvaluationContext, report: dg.AssetKey) -> set[str]:
    return set(context.instance.get_materialized_partitions(report))


def _event_request(
    job_name: str, prefix: str, partition: str, changes: Iterable[Change]
) -> dg.RunRequest:
    """One re-materialization of `partition` (a day, or `account|day`), keyed by the events
    behind it: the same events never re-open it twice."""
    ids = sorted(c.event_id for c in changes)
    digest = hashlib.sha1(",".join(ids).encode()).hexdigest()[:16]
    types = ",".join(sorted({c.type for c in changes}))
    return _request(
        job_name,
        f"{prefix}:{partition}:{digest}",
        partition,
        ",".join(ids),
        len(ids),
        types,
    )


def _request(
    job_name: str, run_key: str, partition: str, events: str, count: int, types: str
) -> dg.RunRequest:
    """One re-materialization of a day, tagged with what re-opened it (read back by
    `late_events`)."""
    return dg.RunRequest(
        job_name=job_name,
        run_key=run_key,
        partition_key=partition,
        tags=late_change_tags(events, count, types),
    )


def _mirror_tick(
    context: dg.SensorEvaluationContext,
    mirror: StripeMirrorResource,
    timezone: str,
    job_name: str,
    payouts_job_name: str,
) -> dg.SensorResult:
    """With a Stripe mirror as the source, a day is re-opened when rows of that day were synced
    after the cursor (the newest sync time already handled): charges by their created day, and
    payouts by their arrival date."""
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
    source = mirror.mirror()
    rows, newest = stripe_mirror.synced_since(source, since)
    zone = ZoneInfo(timezone)
    charge_days: dict[str, set[str]] = {}
    for charge, created in rows:
        day = datetime.fromtimestamp(created, UTC).astimezone(zone).date().isoformat()
        charge_days.setdefault(day, set()).add(charge)
    payouts, payouts_newest = stripe_mirror_payouts.payouts_synced_since(source, since)
    payout_days: dict[str, set[str]] = {}
    for payout, arrival in payouts:
        payout_days.setdefault(arrival.isoformat(), set()).add(payout)
    domains: list[Domain] = [
        (REPORT, job_name, "late_change", charge_days),
        (PAYOUT_REPORT, payouts_job_name, "late_change:payouts", payout_days),
    ]
    newest = max((t for t in (newest, payouts_newest) if t is not None), default=None)
    synced = len(rows) + len(payouts)
    if not synced or newest is None:
        return dg.SensorResult(
            cursor=context.cursor,
            skip_reason=dg.SkipReason("No mirror rows synced since the last tick."),
        )
    requests = []
    for report, job, prefix, days in domains:
        reconciled = _reconciled(context, report)
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
        else dg.SkipReason(f"{synced} row(s) synced; none of a reconciled day."),
    )
