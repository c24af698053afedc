"""What a late change does to a day of a locked month (RECON_LOCKED_PERIOD_POLICY).

`book_in_open_period` (default): the day is re-reconciled as a new report version (history is
never rewritten) but the locked month's close stands; the change is recorded as a prior-period
adjustment of the month open now, whose close lists it, and the run's tags make the alert say
so. `reopen`: the month is unlocked (recorded, with the events as the reason), the day re-run
and the month's close run again, as a new version.
"""

from collections.abc import Callable, Iterable
from datetime import date

import dagster as dg

from recon_dagster.defs.shared import (
    BOOKED_IN_TAG,
    EVENT_TYPES_TAG,
    EVENTS_TAG,
    LOCKED_MONTH_TAG,
    LOCKED_POLICY_TAG,
)
from recon_dagster.settings.accounts import account_and_day
from recon_dagster.stores.close_store import CloseStore, PeriodLockedError
from recon_dagster.usecases.month_close import month_of

ACTOR = "stripe_late_changes"


def apply(
    requests: Iterable[dg.RunRequest],
    closes_of: Callable[[str], CloseStore],
    policy: str,
    today: date,
    close_job: str,
) -> list[dg.RunRequest]:
    """`requests` with the policy applied to those of a locked month's days (each account's
    months locked on their own: `closes_of(account)`), and a re-close of each month re-opened."""
    locked: dict[str, set[str]] = {}
    out: list[dg.RunRequest] = []
    reopened: dict[str, str] = {}  # the close's partition (month, or account|month) -> run key
    for request in requests:
        partition = request.partition_key or ""
        account, day = account_and_day(partition)
        month = day[:7]
        closes = closes_of(account)
        if account not in locked:
            locked[account] = closes.locked_months()
        if month not in locked[account]:
            out.append(request)
            continue
        tags = {**request.tags, LOCKED_MONTH_TAG: month, LOCKED_POLICY_TAG: policy}
        if policy == "reopen":
            close_key = partition[: -len(day)] + f"{month}-01"  # `account|` kept, if any
            if close_key not in reopened:
                reason = f"late change: {request.tags.get(EVENT_TYPES_TAG, '')}"
                try:
                    closes.unlock(month, actor=ACTOR, reason=reason)
                except PeriodLockedError:
                    pass  # unlocked meanwhile (by a person, or an earlier tick): nothing to undo
                reopened[close_key] = request.run_key or month
        else:
            tags[BOOKED_IN_TAG] = month_of(today)
            closes.book_adjustment(
                run_key=request.run_key or partition,
                locked_month=month,
                day=date.fromisoformat(day),
                booked_month=month_of(today),
                events=request.tags.get(EVENTS_TAG, ""),
                event_types=request.tags.get(EVENT_TYPES_TAG, ""),
            )
        out.append(
            dg.RunRequest(
                job_name=request.job_name,
                run_key=request.run_key,
                partition_key=request.partition_key,
                tags=tags,
            )
        )
    out += [
        dg.RunRequest(
            job_name=close_job,
            run_key=f"reopen:{close_key[:-3]}:{key}",
            partition_key=close_key,
            tags={LOCKED_MONTH_TAG: close_key[-10:-3], LOCKED_POLICY_TAG: "reopen"},
        )
        for close_key, key in sorted(reopened.items())
    ]
    return out
