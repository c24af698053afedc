"""`discrepancy_within_tolerance`: one check result per day, whatever the run covered.

Dagster records one `AssetCheckResult` per check step, so a run over several days (a backfill
chunk) would get a single result. The check therefore emits one `AssetCheckEvaluation` per day
(partition), each tied to that day's materialization, read back from the report store.
"""

from datetime import date

import dagster as dg
from dagster import AssetCheckEvaluation, AssetCheckSeverity

from recon_dagster.charges.late_changes import late_events
from recon_dagster.charges.report_metadata import alert_figures
from recon_dagster.check_targets import materialization_target, with_late_change
from recon_dagster.core.grading import exceeds, grade
from recon_dagster.resources import ReconciliationPolicy, ReportStoreResource

CHECK_NAME = "discrepancy_within_tolerance"
REPORT_KEY = dg.AssetKey("reconciliation_report")


def evaluate_day(
    store,
    policy: ReconciliationPolicy,
    partition: str,
    target=None,
    instance: dg.DagsterInstance | None = None,
) -> AssetCheckEvaluation:
    """The check's verdict for one day, from the stored report; a day re-opened by a late change
    carries what changed (`late_change` in the metadata), for the alerts."""
    evaluation = _evaluate_day(store, policy, partition, target)
    late = late_change_figures(store, policy, partition, instance)
    return (
        with_late_change(evaluation, late, f"{late['previous_grade']} -> {late['grade']}")
        if late
        else evaluation
    )


def late_change_figures(
    store, policy: ReconciliationPolicy, partition: str, instance: dg.DagsterInstance | None
) -> dict:
    """When the day's current report came from a late change: the previous and new grades, and
    the Stripe events behind it (from the run's tags). Empty otherwise."""
    versions = store.last_two(date.fromisoformat(partition))
    if not versions or versions[0][1] != "late_change":
        return {}
    current, _, run_id = versions[0]
    previous = versions[1][0] if len(versions) > 1 else None
    run = instance.get_run_by_id(run_id) if instance is not None and run_id else None
    # The events come from the run's tags; a version saved as late_change by other means has none.
    events = late_events(run.tags if run is not None else {}) or {
        "events": [],
        "event_types": "",
        "event_count": 0,
    }

    def graded(result) -> str:
        return (
            "error"
            if result.status == "error"
            else grade(result, policy.tolerance, policy.critical)
        )

    return {
        "previous_grade": graded(previous) if previous is not None else "none",
        "grade": graded(current),
        "previous_status": previous.status if previous is not None else None,
        "status": current.status,
        **events,
    }


def _evaluate_day(
    store, policy: ReconciliationPolicy, partition: str, target=None
) -> AssetCheckEvaluation:
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
            description=f"No reconciliation report for {partition}: materialize the day first.",
            metadata={"date": partition, "grade": "missing"},
        )
    if result.status == "error":
        figures = alert_figures(
            result, tolerance=policy.tolerance, critical=policy.critical, grade="error"
        )
        return AssetCheckEvaluation(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            metadata=figures,
            **common,
            description=f"The reconciliation for {partition} could not run: {result.error}",
        )
    verdict = grade(result, policy.tolerance, policy.critical)
    figures = alert_figures(
        result, tolerance=policy.tolerance, critical=policy.critical, grade=verdict
    )
    pct = f"{result.gross_discrepancy_percentage:.4f}% of the Stripe total ({result.currency})"
    if verdict == "pass":
        return AssetCheckEvaluation(
            passed=True,
            metadata=figures,
            **common,
            description=f"Within the {policy.tolerance}% tolerance: {pct}.",
        )
    severity = AssetCheckSeverity.ERROR if verdict == "critical" else AssetCheckSeverity.WARN
    if result.source_mismatches:
        shown = ", ".join(result.source_mismatches[:10]) + (
            " ..." if len(result.source_mismatches) > 10 else ""
        )
        return AssetCheckEvaluation(
            passed=False,
            severity=severity,
            metadata=figures,
            **common,
            description="The Stripe mirror disagrees with the Stripe API on "
            f"{len(result.source_mismatches)} "
            f"charge(s) of {partition}: {shown}. Gross discrepancy {pct}.",
        )
    if result.source_note and not exceeds(result, policy.tolerance):
        return AssetCheckEvaluation(
            passed=False,
            severity=severity,
            metadata=figures,
            **common,
            description=f"{result.source_note[0].upper()}{result.source_note[1:]}. Otherwise "
            f"{pct}.",
        )
    invalid = result.counts()["invalid_rows"]
    if verdict == "warn" and not exceeds(result, policy.tolerance):
        return AssetCheckEvaluation(
            passed=False,
            severity=severity,
            metadata=figures,
            **common,
            description=f"{invalid} row(s) could not be reconciled (see invalid_rows); "
            f"the rest is within the {policy.tolerance}% tolerance: {pct}.",
        )
    limit = (
        f"the critical {policy.critical}%"
        if verdict == "critical"
        else f"the {policy.tolerance}% tolerance"
    )
    also = f" {invalid} row(s) could not be reconciled (see invalid_rows)." if invalid else ""
    also += f" And {result.source_note}." if result.source_note else ""
    return AssetCheckEvaluation(
        passed=False,
        severity=severity,
        metadata=figures,
        **common,
        description=f"Discrepancy of {pct} is above {limit}.{also}",
    )


def build_check(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=REPORT_KEY,
        name=CHECK_NAME,
        partitions_def=partitions_def,
        description="Each day's gross discrepancy is within "
        "BILLING_RECONCILIATION_TOLERANCE_PERCENT "
        "(WARN above it, ERROR above RECON_CRITICAL_PERCENT).",
    )
    def discrepancy_within_tolerance(
        context: dg.AssetCheckExecutionContext,
        report_store: ReportStoreResource,
        policy: ReconciliationPolicy,
    ):
        store = report_store.store()
        for partition in context.partition_keys:
            yield evaluate_day(
                store,
                policy,
                partition,
                materialization_target(context.instance, REPORT_KEY, partition),
                context.instance,
            )
        # The step's own output; the per-day evaluations above are the results.
        yield dg.Output(None)

    return discrepancy_within_tolerance
