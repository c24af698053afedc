"""`payouts_reconciled`: one check result per arrival date, read back from the stored payout report.

ERROR for a payout that failed, does not itemize to its amount, or never reached the bank; WARN
for charges the payments table lacks (or records with another amount) and for deposits no payout
claims; passed otherwise (payouts still awaiting their deposit pass).
"""

from datetime import date

import dagster as dg
from dagster import AssetCheckEvaluation, AssetCheckSeverity

from recon_dagster.charges.late_changes import late_events
from recon_dagster.check_targets import materialization_target, with_late_change
from recon_dagster.payouts.metadata import payout_figures
from recon_dagster.resources import ReportStoreResource
from recon_dagster.stores.payout_store import PayoutStore

CHECK_NAME = "payouts_reconciled"
REPORT_KEY = dg.AssetKey("payout_reconciliation")


def evaluate_payout_day(
    store: PayoutStore, partition: str, target=None, run_tags: dict[str, str] | None = None
) -> AssetCheckEvaluation:
    """The day's verdict; a run re-opened by a late change says so first, with the events behind it."""
    evaluation = _evaluate_payout_day(store, partition, target)
    late = late_events(run_tags or {})
    return with_late_change(evaluation, late, late["event_types"]) if late else evaluation


def _evaluate_payout_day(store: PayoutStore, partition: str, target=None) -> AssetCheckEvaluation:
    result = store.latest(date.fromisoformat(partition))
    common = dict(
        asset_key=REPORT_KEY,
        check_name=CHECK_NAME,
        partition=partition,
        target_materialization_data=target,
    )
    if result is None:
        return AssetCheckEvaluation(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            **common,
            description=f"No payout report for {partition}: materialize the day first.",
            metadata={"date": partition, "domain": "payouts", "severity": "missing"},
        )
    figures = payout_figures(result)
    if result.error:
        return AssetCheckEvaluation(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            metadata=figures,
            **common,
            description=f"The payout reconciliation for {partition} could not run: {result.error}",
        )
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
    if result.source_mismatches:
        shown = ", ".join(result.source_mismatches[:10]) + (
            " ..." if len(result.source_mismatches) > 10 else ""
        )
        bank += f" The Stripe mirror disagrees with the Stripe API on {len(result.source_mismatches)} payout(s): {shown}."
    severity = result.severity()
    if severity == "pass":
        return AssetCheckEvaluation(
            passed=True,
            metadata=figures,
            **common,
            description=f"{counts['payouts']} payout(s) reconciled.{waiting}{bank}",
        )
    return AssetCheckEvaluation(
        passed=False,
        metadata=figures,
        **common,
        severity=AssetCheckSeverity.ERROR if severity == "error" else AssetCheckSeverity.WARN,
        description=f"{counts['payouts']} payout(s); {found or 'no problem found'}.{waiting}{bank}",
    )


def build_payout_check(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=REPORT_KEY,
        name=CHECK_NAME,
        partitions_def=partitions_def,
        description="Each day's payouts itemize to their amounts, settle charges the payments "
        "table "
        "records, and reach the bank (ERROR), and no deposit is left unclaimed (WARN).",
    )
    def payouts_reconciled(
        context: dg.AssetCheckExecutionContext, report_store: ReportStoreResource
    ):
        store = PayoutStore(report_store.store())
        for partition in context.partition_keys:
            yield evaluate_payout_day(
                store,
                partition,
                materialization_target(context.instance, REPORT_KEY, partition),
                run_tags=context.run.tags,
            )
        yield dg.Output(
            None
        )  # the step's own output; the per-day evaluations above are the results

    return payouts_reconciled
