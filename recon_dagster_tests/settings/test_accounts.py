"""RECON_STRIPE_CONNECT, RECON_STRIPE_ACCOUNTS and RECON_ACCOUNT_COLUMN: which accounts are
reconciled and how each is called, and the errors a wrong combination gets."""

from __future__ import annotations

import pytest

from recon_dagster.settings import ConfigError, Settings
from recon_dagster.settings.accounts import (
    DEFAULT_ACCOUNT,
    Accounts,
    account_and_day,
    parse_accounts,
    partition_key,
)


def test_no_setting_is_the_one_default_account():
    accounts = Settings.from_env({}).accounts
    assert (accounts.multi, accounts.listed, accounts.stripe_account(DEFAULT_ACCOUNT)) == (
        False,
        ("default",),
        None,
    )


def test_connect_names_each_connected_account_in_the_stripe_account_header():
    accounts = Accounts(True, parse_accounts("V", "acct_1A, acct_2B"))
    assert accounts.multi and accounts.listed == ("acct_1A", "acct_2B")
    assert accounts.stripe_account("acct_1A") == "acct_1A"
    assert accounts.key_variable("acct_1A") is None
    assert accounts.wanted("acct_2B") and not accounts.wanted("acct_9Z")


def test_connect_without_a_list_wants_every_connected_account():
    accounts = Accounts(True, parse_accounts("V", ""))
    assert accounts.multi and accounts.listed == () and accounts.wanted("acct_anything")


def test_connect_discovers_the_platforms_own_account_first_called_without_a_header():
    accounts = Accounts(True, parse_accounts("V", ""))
    assert accounts.discovered(["acct_1A", "acct_2B"]) == ["platform", "acct_1A", "acct_2B"]
    assert accounts.stripe_account("platform") is None
    assert accounts.is_platform("platform") and not accounts.connected("platform")
    assert accounts.connected("acct_1A") and not accounts.is_platform("acct_1A")


def test_a_connect_list_may_name_the_platform_or_leave_it_out():
    with_platform = Accounts(True, parse_accounts("V", "platform,acct_1A"))
    assert with_platform.discovered(["acct_1A", "acct_2B"]) == ["platform", "acct_1A"]
    without = Accounts(True, parse_accounts("V", "acct_2B"))
    assert without.discovered(["acct_1A", "acct_2B"]) == ["acct_2B"]


def test_named_keys_call_each_account_with_its_own_key_and_no_header():
    accounts = Accounts(False, parse_accounts("V", "eu:STRIPE_API_KEY_EU,us:STRIPE_API_KEY_US"))
    assert accounts.listed == ("eu", "us")
    assert (accounts.key_variable("eu"), accounts.stripe_account("eu")) == (
        "STRIPE_API_KEY_EU",
        None,
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("acct_1,eu:KEY", "cannot be mixed"),
        ("ch_1", "not a connected account id"),
        ("eu:lower_case", "name:VARIABLE"),
        ("eu:KEY_A,eu:KEY_B", "named twice"),
        ("e u:KEY", "name:VARIABLE"),
        ("platform:STRIPE_API_KEY_P", "Connect platform's own account"),
    ],
)
def test_a_malformed_list_names_the_variable_and_the_item(text, says):
    with pytest.raises(ConfigError, match=says) as raised:
        Settings.from_env({"RECON_STRIPE_ACCOUNTS": text, "RECON_ACCOUNT_COLUMN": "acct"})
    assert "RECON_STRIPE_ACCOUNTS" in str(raised.value)


def test_connected_ids_without_connect_are_refused():
    with pytest.raises(ConfigError, match="RECON_STRIPE_CONNECT=1"):
        Settings.from_env({"RECON_STRIPE_ACCOUNTS": "acct_1", "RECON_ACCOUNT_COLUMN": "acct"})


def test_named_keys_with_connect_are_refused():
    env = {
        "RECON_STRIPE_CONNECT": "1",
        "RECON_STRIPE_ACCOUNTS": "eu:KEY_EU",
        "KEY_EU": "sk_test_eu",
        "RECON_ACCOUNT_COLUMN": "acct",
    }
    with pytest.raises(ConfigError, match="RECON_STRIPE_CONNECT is on"):
        Settings.from_env(env)


def test_a_named_key_variable_must_be_set_and_its_value_is_never_shown():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(
            {
                "RECON_STRIPE_ACCOUNTS": "eu:KEY_EU,us:KEY_US",
                "KEY_EU": "sk_live_secret_eu_1234",
                "RECON_ACCOUNT_COLUMN": "acct",
            }
        )
    assert "KEY_US" in str(raised.value) and "'us'" in str(raised.value)
    assert "sk_live_secret_eu_1234" not in str(raised.value)


def test_many_accounts_need_the_account_column():
    with pytest.raises(ConfigError, match="RECON_ACCOUNT_COLUMN"):
        Settings.from_env({"RECON_STRIPE_CONNECT": "1"})


def test_an_account_outside_the_deployment_is_refused_by_name():
    accounts = Accounts(False, parse_accounts("V", "eu:KEY_EU"))
    with pytest.raises(ConfigError, match="does not name 'us'"):
        accounts.check("us")
    with pytest.raises(ConfigError, match="only account is 'default'"):
        Accounts().check("eu")


@pytest.mark.parametrize(
    ("key", "parts"),
    [("2026-11-01", ("default", "2026-11-01")), ("acct_1|2026-11-01", ("acct_1", "2026-11-01"))],
)
def test_a_partition_key_splits_into_account_and_day(key, parts):
    assert account_and_day(key) == parts
    assert partition_key(*parts, multi=parts[0] != "default") == key
