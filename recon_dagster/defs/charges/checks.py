"""`discrepancy_within_tolerance`: one check result per day, whatever the run covered.

It emits one `AssetCheckEvaluation` per day (partition), each tied to that day's
materialization and read back from the report store (see `defs/check_results.py` for why).
"""

from datetime import date
from typing import Any

import dagster as dg
from dagster import AssetCheckEvaluation, AssetCheckSeverity

from recon_dagster.core.grading import exceeds, grade
from recon_dagster.core.result import ReconciliationResult
from recon_dagster.defs.charges.metadata import alert_figures
from recon_dagster.defs.check_results import (
    Target,
    account_verdict,
    materialization_target,
    with_late_change,
)
from recon_dagster.defs.resources import ReconciliationPolicy, ReportStoreResource
from recon_dagster.defs.shared import REPORT, REPORT_CHECK, late_events
from recon_dagster.settings.accounts import account_and_day
from recon_dagster.stores.report_store import ReportStore

CHECK_NAME = REPORT_CHECK.name


def evaluate_day(
    store: ReportStore,
    policy: ReconciliationPolicy,
    partition: str,
    target: Target | None = None,
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
    store: ReportStore,
    policy: ReconciliationPolicy,
    partition: str,
    instance: dg.DagsterInstance | None,
) -> dict:
    """When the day's current report came from a late change: the previous and new grades, and
    the Stripe events behind it (from the run's tags). Empty otherwise."""
    versions = store.last_two(date.fromisoformat(account_and_day(partition)[1]))
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

    def graded(result: ReconciliationResult) -> str:
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


WARN, ERROR = AssetCheckSeverity.WARN, AssetCheckSeverity.ERROR


def _evaluate_day(
    store: ReportStore, policy: ReconciliationPolicy, partition: str, target: Target | None = None
) -> AssetCheckEvaluation:
    day, verdict = account_verdict(REPORT_CHECK, partition, target)
    partition = day  # as the messages below name it (an account is named first, by `verdict`)
    result = store.latest(date.fromisoformat(day))
    if result is None:
        missing = f"No reconciliation report for {partition}: materialize the day first."
        return verdict(False, missing, {"date": day, "grade": "missing"}, WARN)
    if result.status == "error":
        figures = alert_figures(
            result, tolerance=policy.tolerance, critical=policy.critical, grade="error"
        )
        failed = f"The reconciliation for {partition} could not run: {result.error}"
        return verdict(False, failed, figures, WARN)
    grade_ = grade(result, policy.tolerance, policy.critical)
    figures = alert_figures(
        result, tolerance=policy.tolerance, critical=policy.critical, grade=grade_
    )
    pct = f"{result.gross_discrepancy_percentage:.4f}% of the Stripe total ({result.currency})"
    if grade_ == "pass":
        return verdict(True, f"Within the {policy.tolerance}% tolerance: {pct}.", figures)
    severity = ERROR if grade_ == "critical" else WARN
    mismatches, note = result.source_mismatches, result.source_note
    if mismatches:
        shown = ", ".join(mismatches[:10]) + (" ..." if len(mismatches) > 10 else "")
        disagrees = (
            f"The Stripe mirror disagrees with the Stripe API on {len(mismatches)} charge(s) "
            f"of {partition}: {shown}. Gross discrepancy {pct}."
        )
        return verdict(False, disagrees, figures, severity)
    if note and not exceeds(result, policy.tolerance):
        return verdict(False, f"{note[0].upper()}{note[1:]}. Otherwise {pct}.", figures, severity)
    invalid = result.counts()["invalid_rows"]
    if grade_ == "warn" and not exceeds(result, policy.tolerance):
        left_out = (
            f"{invalid} row(s) could not be reconciled (see invalid_rows); "
            f"the rest is within the {policy.tolerance}% tolerance: {pct}."
        )
        return verdict(False, left_out, figures, severity)
    limit = (
        f"the critical {policy.critical}%"
        if grade_ == "critical"
        else f"the {policy.tolerance}% tolerance"
    )
    also = f" {invalid} row(s) could not be reconciled (see invalid_rows)." if invalid else ""
    also += f" And {note}." if note else ""
    return verdict(False, f"Discrepancy of {pct} is above {limit}.{also}", figures, severity)


def build_charges_check(partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=REPORT,
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
    ) -> Any:  # yields one AssetCheckEvaluation a day, which the decorator's types do not describe

        for partition in context.partition_keys:
            store = report_store.store(account_and_day(partition)[0])
            yield evaluate_day(
                store,
                policy,
                partition,
                materialization_target(context.instance, REPORT, partition),
                context.instance,
            )
        # The step's own output; the per-day evaluations above are the results.
        yield dg.Output(None)

    return discrepancy_within_tolerance
