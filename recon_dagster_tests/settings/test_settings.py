"""The table of settings: the one place a variable is written down, its documentation generated
from it, its defaults the resources' defaults, its secrets never echoed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from recon_dagster.defs.resources import (
    BankResource,
    PaymentsDatabaseResource,
    ReconciliationPolicy,
    StripeMirrorResource,
    StripeResource,
)
from recon_dagster.settings import VARIABLES, ConfigError, Settings, default, docs as settings_docs

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_and_the_readme_table_are_generated_from_the_table():
    assert settings_docs.main(["--root", str(ROOT)]) == 0, (
        "run: python -m recon_dagster.settings.docs --write"
    )


def test_every_variable_is_in_the_readme_and_the_env_example_once():
    readme, example = (ROOT / "README.md").read_text(), (ROOT / ".env.example").read_text()
    for v in VARIABLES:
        assert len(re.findall(rf"^\| `{v.name}` \|", readme, re.M)) == 1, v.name
        assert len(re.findall(rf"^# {v.name}=", example, re.M)) == 1, v.name


def test_every_default_is_a_valid_value_of_its_own_variable():
    for v in VARIABLES:
        v.parse(v.name, v.default)  # raises ConfigError naming the variable if not


def test_the_settings_read_every_variable_of_the_table_from_the_given_environment():
    s = Settings.from_env(
        {
            "RECON_PAYMENTS_ID_COLUMN": "ref",
            "RECON_MATCH_ON": "PAYMENT_INTENT",
            "RECON_BANK_TABLE": "bank_lines",
            "RECON_BANK_MATCH_DAYS": "0",
            "STRIPE_ENDPOINT_REQUESTS_PER_SECOND": "10",
            "RECON_LATE_CHANGES_INTERVAL_SECONDS": "30",
        }
    )
    assert s.payments.id_column == "ref" and s.match_on == "payment_intent"
    assert s.bank is not None and s.bank.table == "bank_lines" and s.bank.match_days == 0
    assert s.stripe_endpoint_requests_per_second == 10.0
    assert s.late_changes_interval_seconds == 30


def test_resources_default_to_the_tables_defaults():
    payments = PaymentsDatabaseResource(url="duckdb:///x.duckdb")
    assert payments.id_column == default("RECON_PAYMENTS_ID_COLUMN") == "stripe_charge_id"
    assert tuple(payments.paid_statuses) == default("RECON_PAYMENTS_PAID_STATUSES")
    assert payments.amount_unit == "minor" and payments.db_timezone == "UTC"
    bank = BankResource()
    assert (bank.date_column, bank.match_days) == ("booked_on", 3)
    policy = ReconciliationPolicy()
    assert (policy.tolerance, policy.critical, policy.match_on) == (1, 5, "auto")
    assert StripeResource(api_key="sk_test_x").endpoint_requests_per_second == 25.0
    assert StripeMirrorResource().spot_check == 50


@pytest.mark.parametrize(
    ("resource", "field", "value", "variable"),
    [
        (PaymentsDatabaseResource, "amount_unit", "cents", "RECON_PAYMENTS_AMOUNT_UNIT"),
        (BankResource, "amount_unit", "cents", "RECON_BANK_AMOUNT_UNIT"),
        (ReconciliationPolicy, "match_on", "maybe", "RECON_MATCH_ON"),
        (ReconciliationPolicy, "timezone", "Mars/Olympus", "RECON_TIMEZONE"),
    ],
)
def test_a_wrong_launchpad_value_is_named_like_its_variable(resource, field, value, variable):
    kwargs = {"url": "duckdb:///x.duckdb"} if resource is PaymentsDatabaseResource else {}
    with pytest.raises(Exception, match=variable):
        resource(**kwargs, **{field: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECON_DATABASE_URL", "oracle://app:hunter2@db/shop"),
        ("RECON_REPORT_STORE_URL", "mysql://app:hunter2@db/recon"),
        ("RECON_BANK_DATABASE_URL", "oracle://app:hunter2@db/bank"),
        ("RECON_STRIPE_SOURCE", "mysql://app:hunter2@db/stripe"),
        ("SLACK_WEBHOOK_URL", "hooks.slack.com/services/hunter2"),
    ],
)
def test_a_wrong_secret_is_named_never_echoed(name, value):
    with pytest.raises(ConfigError, match=name) as raised:
        Settings.from_env({name: value, "RECON_BANK_TABLE": "bank_lines"})
    assert "hunter2" not in str(raised.value)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )


def test_importing_the_code_location_module_builds_nothing_until_defs_is_asked_for(tmp_path):
    code = "import recon_dagster.definitions as d\nprint('imported')\nd.defs\n"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RECON_TIMEZONE": "Mars/Olympus"}
    out = run_python(code, **env)
    assert out.stdout.strip() == "imported"
    assert "ConfigError: RECON_TIMEZONE" in out.stderr


def test_the_pure_parts_import_without_dagster(tmp_path):
    code = (
        "import sys\n"
        "import recon_dagster, recon_dagster.core.reconcile, recon_dagster.usecases.charges\n"
        "import recon_dagster.usecases.payouts, recon_dagster.stores.report_store\n"
        "import recon_dagster.alerts.slack_messages, recon_dagster.alerts.pagerduty_events\n"
        "import recon_dagster.settings, recon_dagster.sync.repair\n"
        "print('dagster' in sys.modules)\n"
    )
    out = run_python(code, PATH="/usr/bin:/bin", HOME=str(tmp_path))
    assert out.stdout.strip() == "False", out.stderr
