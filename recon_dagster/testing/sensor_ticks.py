"""Sensor ticks as dagster-daemon evaluates them: from the code location's own definitions and
resources, on a given instance (tests, and the demo's late-changes story)."""

import dagster as dg


def evaluate_tick(
    defs: dg.Definitions, sensor_name: str, instance: dg.DagsterInstance, cursor: str | None
):
    """One evaluation of the sensor after `cursor` (its run requests, cursor and skip message)."""
    sensor = defs.resolve_sensor_def(sensor_name)
    resources = {key: (defs.resources or {})[key] for key in sensor.required_resource_keys}
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        repository_def=defs.get_repository_def(),
        resources=resources,
    )
    return sensor.evaluate_tick(context)


def late_changes_tick(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
) -> tuple[list[dg.RunRequest], str | None]:
    """(run requests, cursor) of one `stripe_late_changes` tick."""
    result = evaluate_tick(defs, "stripe_late_changes", instance, cursor)
    return list(result.run_requests or []), result.cursor
