"""Slack messages and PagerDuty events for the checks' evaluations, and their delivery's retries.

No Dagster here: the sensors (`defs/alerts/sensors.py`) read the evaluations from the instance, so
a run's own code never sends an alert, and hand each one's figures (`figures.Evaluation`) to
`slack_messages` and `pagerduty_events`.
"""
