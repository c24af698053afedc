"""Slack and PagerDuty alerts as Dagster objects: the sensors that read both checks'
evaluations, and the resources that deliver the messages `recon_dagster.alerts` builds."""
