"""`payouts_reconciled`: one check result per arrival date, read back from the stored payout
report.

ERROR for a payout that failed, does not itemize to its amount, or never reached the bank; WARN
for charges the payments table lacks (or records with another amount) and for deposits no payout
claims; passed otherwise (payouts still awaiting their deposit pass).
"""

from collections.abc import Mapping
from datetime import date
from typing import Any

import dagster as dg
from dagster import AssetCheckEvaluation, AssetCheckSeverity

from recon_dagster.defs.check_results import (
    Target,
    account_verdict,
    materialization_target,
    with_late_change,
)
from recon_dagster.defs.payouts.metadata import payout_figures
from recon_dagster.defs.resources import ReportStoreResource
from recon_dagster.defs.shared import PAYOUT_CHECK, PAYOUT_REPORT, late_events
from recon_dagster.settings.accounts import account_and_day
from recon_dagster.stores.payout_store import PayoutStore

CHECK_NAME = PAYOUT_CHECK.name
WARN, ERROR = AssetCheckSeverity.WARN, AssetCheckSeverity.ERROR


def evaluate_payout_day(
    store: PayoutStore,
    partition: str,
    target: Target | None = None,
    run_tags: Mapping[str, str] | None = None,
) -> AssetCheckEvaluation:
    """The day's verdict; a run re-opened by a late change says so first, with the events behind
    it."""
    evaluation = _evaluate_payout_day(store, partition, target)
    late = late_events(run_tags or {})
    return with_late_change(evaluation, late, late["event_types"]) if late else evaluation


def _evaluate_payout_day(
    store: PayoutStore, partition: str, target: Target | None = None
) -> AssetCheckEvaluation:
    day, verdict = account_verdict(PAYOUT_CHECK, partition, target)
    partition = day  # as the messages below name it (an account is named first, by `verdict`)
    result = store.latest(date.fromisoformat(day))
    if result is None:
        missing = f"No payout report for {partition}: materialize the day first."
        return verdict(
            False, missing, {"date": partition, "domain": "payouts", "severity": "missing"}, WARN
        )
    figures = payout_figures(result)
    if result.error:
        failed = f"The payout reconciliation for {partition} could not run: {result.error}"
        return verdict(False, failed, figures, WARN)
    counts = result.counts()
    found = ", ".join(
        f"{k.replace('_', ' ')}: {v}"
        for k, v in counts.items()
        if k not in ("payouts", "awaiting_bank") and v
    )
    waiting = (
        f" {counts['awaiting_bank']} awaiting their bank deposit."
        if counts.get("awaiting_bank")
        else ""
    )
    bank = "" if result.bank_checked else " The bank step is off (RECON_BANK_TABLE is not set)."
    bank += f" And {result.source_note}." if result.source_note else ""
    mismatches = result.source_mismatches
    if mismatches:
        shown = ", ".join(mismatches[:10]) + (" ..." if len(mismatches) > 10 else "")
        bank += (
            f" The Stripe mirror disagrees with the Stripe API on {len(mismatches)} payout(s): "
            f"{shown}."
        )
    severity = result.severity()
    if severity == "pass":
        return verdict(True, f"{counts['payouts']} payout(s) reconciled.{waiting}{bank}", figures)
    problems = f"{counts['payouts']} payout(s); {found or 'no problem found'}.{waiting}{bank}"
    return verdict(False, problems, figures, ERROR if severity == "error" else WARN)


def build_payout_check(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=PAYOUT_REPORT,
        name=CHECK_NAME,
        partitions_def=partitions_def,
        description="Each day's payouts itemize to their amounts, settle charges the payments "
        "table records, and reach the bank (ERROR), and no deposit is left unclaimed (WARN).",
    )
    def payouts_reconciled(
        context: dg.AssetCheckExecutionContext, report_store: ReportStoreResource
    ) -> Any:  # yields one AssetCheckEvaluation a day, which the decorator's types do not describe
        for partition in context.partition_keys:
            store = PayoutStore(report_store.store(account_and_day(partition)[0]))
            yield evaluate_payout_day(
                store,
                partition,
                materialization_target(context.instance, PAYOUT_REPORT, partition),
                run_tags=context.run.tags,
            )
        # The step's own output; the per-day evaluations above are the results.
        yield dg.Output(None)

    return payouts_reconciled
