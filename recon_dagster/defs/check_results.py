"""What both domains' per-day check evaluations share: the materialization each belongs to, and
how a day re-opened by a late change says so.

The one private Dagster import of the package is here, on purpose: Dagster records one
`AssetCheckResult` per check step, so a run over several days (a backfill chunk) would get a
single result. Our checks therefore emit one public `AssetCheckEvaluation` per day, and each must
name its day's materialization itself (else the UI shows it unattached), through
`AssetCheckEvaluationTargetMaterializationData`, which Dagster does not export. Revisit at each
Dagster upgrade: a public per-partition `AssetCheckResult` would remove it.
"""

from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from recon_dagster.settings.accounts import DEFAULT_ACCOUNT, account_and_day

Target = AssetCheckEvaluationTargetMaterializationData
Verdict = Callable[..., dg.AssetCheckEvaluation]


def day_evaluation(
    check: dg.AssetCheckKey,
    partition: str,
    target: Target | None,
    passed: bool,
    description: str,
    metadata: dict[str, Any],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckEvaluation:
    """`check`'s evaluation of one day (`partition`), tied to the day's materialization."""
    return dg.AssetCheckEvaluation(
        asset_key=check.asset_key,
        check_name=check.name,
        partition=partition,
        target_materialization_data=target,
        passed=passed,
        severity=severity,
        description=description,
        metadata=metadata,
    )


def account_verdict(
    check: dg.AssetCheckKey, partition: str, target: Target | None
) -> tuple[str, Verdict]:
    """The partition's day, and `verdict(passed, text, figures[, severity])`: its
    `day_evaluation`, which for another account than `default` names the account first in the
    text and as `account` in the figures (the alerts show both)."""
    account, day = account_and_day(partition)

    def verdict(
        passed: bool,
        text: str,
        figures: dict[str, Any],
        severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    ) -> dg.AssetCheckEvaluation:
        if account != DEFAULT_ACCOUNT:
            text, figures = f"Account {account}: {text}", {**figures, "account": account}
        return day_evaluation(check, partition, target, passed, text, figures, severity)

    return day, verdict


def with_late_change(
    evaluation: dg.AssetCheckEvaluation, late: dict[str, Any], label: str
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
) -> Target | None:
    """The latest materialization of `asset_key`'s `partition`, as a check evaluation's target."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    record = records[0]
    return Target(
        run_id=record.event_log_entry.run_id,
        storage_id=record.storage_id,
        timestamp=record.timestamp,
    )
