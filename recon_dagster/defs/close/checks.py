"""`balance_ties_out`: one result per day of `balance_rollforward`, and `month_tied_out` on
`month_close`.

A day fails (ERROR) when its opening is not the previous day's stored closing, when a balance
transaction of it was quarantined, or, for the latest day (yesterday: a daily partition exists
once its day has ended), when its closing differs from Stripe's balance at its end: `GET
/v1/balance` (available + pending + connect reserved) minus the net of what was created since.
Each message names the currency and the difference. A month fails when its last close is not
tied out.
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl
import stripe

from recon_dagster.core.rollforward import balances, chain_breaks
from recon_dagster.days import day_window, today
from recon_dagster.defs.check_results import day_evaluation, materialization_target
from recon_dagster.defs.close.assets import QUARANTINE_TABLE, ROLLFORWARD_TABLE
from recon_dagster.defs.resources import (
    AssetTablesResource,
    ReconciliationPolicy,
    ReportStoreResource,
    StripeResource,
)
from recon_dagster.defs.shared import (
    EXPECTED_ERRORS,
    MONTH_CLOSE,
    ROLLFORWARD,
    TIES_OUT_CHECK,
    account_table,
)
from recon_dagster.money import format_major
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT, account_and_day
from recon_dagster.sources.stripe_balance import fetch_balance, fetch_balance_transactions
from recon_dagster.stores.asset_slice import Slice
from recon_dagster.stores.asset_tables import AssetTables
from recon_dagster.stores.close_store import CloseStore

ERROR = dg.AssetCheckSeverity.ERROR


def day_problems(
    tables: AssetTables,
    day: date,
    stripe_balance: dict[str, int] | None,
    account: str = DEFAULT_ACCOUNT,
) -> tuple[list[str], dict[str, int]]:
    """What is wrong with `account`'s roll-forward of `day` (empty: it ties out), and its
    closing balances."""
    window = Slice("day", day - timedelta(days=1), day + timedelta(1))
    rows = tables.read(account_table(ROLLFORWARD_TABLE, account), window)
    today_rows = rows.filter(pl.col("day") == day)
    closing = {c: int(v) for c, v in today_rows.select("currency", "closing").iter_rows()}
    problems = [
        f"{currency} opens at {format_major(opening, currency)}, "
        f"{format_major(opening - previous, currency)} away from the previous day's closing"
        for _, currency, opening, previous in chain_breaks(rows).iter_rows()
    ]
    quarantined = tables.read(
        account_table(QUARANTINE_TABLE, account), Slice("day", day, day + timedelta(days=1))
    )
    problems += [str(reason) for reason in quarantined.get_column("invalid_reason")]
    if stripe_balance is not None:
        for currency in sorted(set(closing) | set(stripe_balance)):
            gap = closing.get(currency, 0) - stripe_balance.get(currency, 0)
            if gap:
                problems.append(
                    f"{currency} closes at {format_major(closing.get(currency, 0), currency)}, "
                    f"Stripe's balance is {format_major(stripe_balance.get(currency, 0), currency)}"
                    f" (difference {format_major(gap, currency)})"
                )
    return problems, closing


def balance_at_end_of(client: stripe.StripeClient, day: date, timezone: str) -> dict[str, int]:
    """Stripe's balance per currency at the end of `day`: the balance now, less the net of the
    transactions created since (listed up to just before the balance was read: one created in
    between is counted in the balance only, and shows as a difference until the next check)."""
    read_at = datetime.now(UTC)
    now = {c: b.total for c, b in fetch_balance(client).items()}
    since = balances(fetch_balance_transactions(client, day_window(day, day, timezone)[1], read_at))
    return {c: now.get(c, 0) - since.get(c, 0) for c in sorted(set(now) | set(since))}


def build_close_checks(
    days: dg.PartitionsDefinition, months: dg.PartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=ROLLFORWARD,
        name=TIES_OUT_CHECK.name,
        partitions_def=days,
        description="Each day opens where the day before closed, no balance transaction was "
        "quarantined, and today's closing balance equals Stripe's GET /v1/balance (ERROR).",
    )
    def balance_ties_out(
        context: dg.AssetCheckExecutionContext,
        stripe: StripeResource,
        asset_tables: AssetTablesResource,
        policy: ReconciliationPolicy,
    ) -> Any:  # yields one AssetCheckEvaluation a day (see defs/check_results.py)
        tables = asset_tables.tables()
        current = today(policy.timezone)
        for partition in context.partition_keys:
            account, key = account_and_day(partition)
            day = date.fromisoformat(key)
            target = materialization_target(context.instance, ROLLFORWARD, partition)
            try:
                balance = None
                if day >= current - timedelta(days=1):
                    balance = balance_at_end_of(stripe.client(account), day, policy.timezone)
                problems, closing = day_problems(tables, day, balance, account)
            except EXPECTED_ERRORS as exc:
                problems, closing = [f"could not check {key}: {exc}"], {}
            figures: dict[str, Any] = {"date": key, "closing": dg.MetadataValue.json(closing)}
            if account != DEFAULT_ACCOUNT:
                figures["account"] = account
            tied = "Ties out to Stripe's balance." if balance is not None else "Ties out."
            text = "; ".join(problems) if problems else tied
            yield day_evaluation(
                TIES_OUT_CHECK, partition, target, not problems, text, figures, ERROR
            )
        yield dg.Output(None)

    @dg.asset_check(
        asset=MONTH_CLOSE,
        name="month_tied_out",
        partitions_def=months,
        description="The month's last close ties out to Stripe's balance at month end (ERROR).",
    )
    def month_tied_out(
        context: dg.AssetCheckExecutionContext, report_store: ReportStoreResource
    ) -> dg.AssetCheckResult:
        account, first = account_and_day(context.partition_key)
        month = first[:7]
        closes = CloseStore(report_store.store(account)).closes(month)
        if not closes:
            return dg.AssetCheckResult(
                passed=False, severity=ERROR, description=f"{month} was never closed."
            )
        last = closes[0]
        return dg.AssetCheckResult(
            passed=last["status"] == "tied_out",
            severity=ERROR,
            description=f"{month} v{last['version']}: {last['status']}",
            metadata={"month": month, "version": last["version"]},
        )

    return [balance_ties_out, month_tied_out]
