"""Local Slack and PagerDuty receivers, a fresh pair per test."""

from __future__ import annotations

import pytest

from recon_dagster_tests.support.receivers import pagerduty_receiver, slack_receiver


@pytest.fixture
def slack_rx():
    r = slack_receiver()
    yield r
    r.close()


@pytest.fixture
def pd_rx():
    r = pagerduty_receiver()
    yield r
    r.close()
