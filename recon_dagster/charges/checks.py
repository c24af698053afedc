"""`discrepancy_within_tolerance`: one check result per day, whatever the run covered.

Dagster records one `AssetCheckResult` per check step, so a run over several days (a backfill
chunk) would get a single result. The check therefore emits one `AssetCheckEvaluation` per day
(partition), each tied to that day's materialization, read back from the report store.
"""


from datetime import date

import dagster as dg
from dagster import AssetCheckEvaluation, AssetCheckSeverity

from recon_dagster.check_targets import materialization_target
from recon_dagster.core.grading import exceeds, grade
from recon_dagster.charges.report_metadata import alert_figures
from recon_dagster.resources import ReconciliationPolicy, ReportStoreResource

CHECK_NAME = "discrepancy_within_tolerance"
REPORT_KEY = dg.AssetKey("reconciliation_report")


def evaluate_day(
    store, policy: ReconciliationPolicy, partition: str, target=None
) -> AssetCheckEvaluation:
    """The check's verdict for one day, from the stored report."""
    result = store.latest(date.fromisoformat(partition))
    common = dict(asset_key=REPORT_KEY, check_name=CHECK_NAME, partition=partition, target_materialization_data=target)
    if result is None:
        return AssetCheckEvaluation(passed=False, severity=AssetCheckSeverity.WARN, **common,
                                    description=f"No reconciliation report for {partition}: materialize the day first.",
                                    metadata={"date": partition, "grade": "missing"})  # fmt: skip
    if result.status == "error":
        figures = alert_figures(result, tolerance=policy.tolerance, critical=policy.critical, grade="error")
        return AssetCheckEvaluation(passed=False, severity=AssetCheckSeverity.WARN, metadata=figures, **common,
                                    description=f"The reconciliation for {partition} could not run: {result.error}")  # fmt: skip
    verdict = grade(result, policy.tolerance, policy.critical)
    figures = alert_figures(result, tolerance=policy.tolerance, critical=policy.critical, grade=verdict)
    pct = f"{result.gross_discrepancy_percentage:.4f}% of the Stripe total ({result.currency})"
    if verdict == "pass":
        return AssetCheckEvaluation(passed=True, metadata=figures, **common,
                                    description=f"Within the {policy.tolerance}% tolerance: {pct}.")  # fmt: skip
    severity = AssetCheckSeverity.ERROR if verdict == "critical" else AssetCheckSeverity.WARN
    if result.source_mismatches:
        shown = ", ".join(result.source_mismatches[:10]) + (" ..." if len(result.source_mismatches) > 10 else "")
        return AssetCheckEvaluation(passed=False, severity=severity, metadata=figures, **common,
                                    description=f"The Stripe mirror disagrees with the Stripe API on {len(result.source_mismatches)} "
                                                f"charge(s) of {partition}: {shown}. Gross discrepancy {pct}.")  # fmt: skip
    if result.source_note and not exceeds(result, policy.tolerance):
        return AssetCheckEvaluation(passed=False, severity=severity, metadata=figures, **common,
                                    description=f"{result.source_note[0].upper()}{result.source_note[1:]}. Otherwise {pct}.")  # fmt: skip
    invalid = result.counts()["invalid_rows"]
    if verdict == "warn" and not exceeds(result, policy.tolerance):
        return AssetCheckEvaluation(passed=False, severity=severity, metadata=figures, **common,
                                    description=f"{invalid} row(s) could not be reconciled (see invalid_rows); "
                                                f"the rest is within the {policy.tolerance}% tolerance: {pct}.")  # fmt: skip
    limit = f"the critical {policy.critical}%" if verdict == "critical" else f"the {policy.tolerance}% tolerance"
    also = f" {invalid} row(s) could not be reconciled (see invalid_rows)." if invalid else ""
    also += f" And {result.source_note}." if result.source_note else ""
    return AssetCheckEvaluation(passed=False, severity=severity, metadata=figures, **common,
                                description=f"Discrepancy of {pct} is above {limit}.{also}")  # fmt: skip


def build_check(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=REPORT_KEY,
        name=CHECK_NAME,
        partitions_def=partitions_def,
        description="Each day's gross discrepancy is within BILLING_RECONCILIATION_TOLERANCE_PERCENT "
        "(WARN above it, ERROR above RECON_CRITICAL_PERCENT).",
    )
    def discrepancy_within_tolerance(
        context: dg.AssetCheckExecutionContext, report_store: ReportStoreResource, policy: ReconciliationPolicy
    ):
        store = report_store.store()
        for partition in context.partition_keys:
            yield evaluate_day(store, policy, partition, materialization_target(context.instance, REPORT_KEY, partition))
        # The step's own output; the per-day evaluations above are the results.
        yield dg.Output(None)

    return discrepancy_within_tolerance
