"""Slack and PagerDuty alerts, driven by the `discrepancy_within_tolerance` check's evaluations.

Sensors (`sensors.py`) read the check's evaluations from the Dagster instance, so a run's own code
never sends an alert; `slack.py` and `pagerduty.py` build and deliver the messages.
"""
