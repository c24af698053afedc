"""`daily_reconciliation_celery`: the daily job's assets and check, each step sent to Celery
workers (dagster-celery's executor) through the broker RECON_CELERY_BROKER_URL (RabbitMQ).

The steps run in the workers' processes, on whatever machines they are, and record their events
in the run's instance: so the instance must be one every worker reaches (PostgreSQL,
`dagster.postgres.yaml`), and each worker needs this package and the same settings. Start
workers with `dagster-celery worker start -A dagster_celery.app -y dagster.celery.yaml`; launch
from the UI, or in Python with `dg.reconstructable(definitions.daily_reconciliation_celery)`.
"""

from typing import Any

import dagster as dg
from dagster_celery import celery_executor

from recon_dagster.defs.shared import CELERY_JOB, CHARGES_GROUP, AssetJob


def build_celery_job(days: dg.PartitionsDefinition, broker: Any) -> AssetJob:
    """The daily job on Celery; `broker` is the URL, or an `{"env": …}` source for a secret
    one. It is the job's default run config, so a launch may name another queue
    (`config_source: {task_default_queue: …}`) for workers started with `-q`."""
    return dg.define_asset_job(
        CELERY_JOB,
        selection=dg.AssetSelection.groups(CHARGES_GROUP),
        partitions_def=days,
        executor_def=celery_executor,
        config={"execution": {"config": executor_config(broker)}},
        description="Reconcile days with each step on a Celery worker (dagster-celery): the same "
        "assets and check as daily_reconciliation.",
    )


def executor_config(broker: Any, queue: str | None = None) -> dict[str, Any]:
    """The Celery executor's config: the broker, results over AMQP RPC, and the queue."""
    config: dict[str, Any] = {"broker": broker, "backend": "rpc://"}
    if queue:
        config["config_source"] = {"task_default_queue": queue}
    return config
