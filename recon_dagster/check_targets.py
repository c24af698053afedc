"""Which materialization a per-day check evaluation belongs to (both domains' checks use it)."""

from __future__ import annotations

import dagster as dg

# No public equivalent: a check that emits one `AssetCheckEvaluation` per partition must name the
# partition's materialization itself, or the UI shows the evaluations as unattached.
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData


def materialization_target(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The latest materialization of `asset_key`'s `partition`, as a check evaluation's target."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1).records
    if not records:
        return None
    record = records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        run_id=record.event_log_entry.run_id, storage_id=record.storage_id, timestamp=record.timestamp
    )
