"""What both domains' per-day check evaluations share: the materialization each belongs to, and
how a day re-opened by a late change says so."""

from __future__ import annotations

import dagster as dg

# No public equivalent: a check that emits one `AssetCheckEvaluation` per partition must name the
# partition's materialization itself, or the UI shows the evaluations as unattached.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)


def with_late_change(
    evaluation: dg.AssetCheckEvaluation, late: dict, label: str
) -> dg.AssetCheckEvaluation:
    """`evaluation` with `late` as its `late_change` metadata and its description starting
    "Late change (<label>): ", for the alerts (evaluations are immutable: a new one)."""
    return dg.AssetCheckEvaluation(
        asset_key=evaluation.asset_key,
        check_name=evaluation.check_name,
        passed=evaluation.passed,
        severity=evaluation.severity,
        partition=evaluation.partition,
        target_materialization_data=evaluation.target_materialization_data,
        metadata={**(evaluation.metadata or {}), "late_change": dg.MetadataValue.json(late)},
        description=f"Late change ({label}): {evaluation.description}",
    )


def materialization_target(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The latest materialization of `asset_key`'s `partition`, as a check evaluation's target."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=record.event_log_entry.run_id,
        storage_id=record.storage_id,
        timestamp=record.timestamp,
    )
