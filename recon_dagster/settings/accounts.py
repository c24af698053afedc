"""Which Stripe accounts are reconciled: the one account of `STRIPE_API_KEY` (named `default`), a
platform's connected accounts (Stripe Connect), or several accounts each with its own key
(multi-entity: one per company or region).

`RECON_STRIPE_ACCOUNTS` takes either form, never both:
- `acct_1,acct_2` with `RECON_STRIPE_CONNECT=1`: these connected accounts (default: `platform`, the
  platform's own account, and every one `GET /v1/accounts` lists), each called with the
  `Stripe-Account` header; `platform` may be listed among them;
- `eu:STRIPE_API_KEY_EU,us:STRIPE_API_KEY_US`: an account per name, its key in the variable named
  (the key itself is never written in the setting, so the setting is not a secret).
"""

import re
from dataclasses import dataclass

from recon_dagster.settings.parsing import ConfigError

DEFAULT_ACCOUNT = "default"  # the name of the one account of a single-account deployment
# Under Connect, the platform's own account: its own sales, the application fees it earns and the
# transfers it makes (called without `Stripe-Account`). Its rows in the payments table are those
# whose account column is null or `platform`.
PLATFORM_ACCOUNT = "platform"
ACCOUNTS_VARIABLE = "RECON_STRIPE_ACCOUNTS"
_CONNECTED_ID = re.compile(r"^acct_[A-Za-z0-9]+$")
# A name is also a Dagster partition key and a store value: no `|`, `,` or spaces.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_VARIABLE = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@dataclass(frozen=True)
class AccountsSetting:
    """`RECON_STRIPE_ACCOUNTS` as written: connected account ids, or `name -> key variable`."""

    connected_ids: tuple[str, ...] = ()
    keys: tuple[tuple[str, str], ...] = ()  # (name, the variable holding its key)

    @property
    def names(self) -> tuple[str, ...]:
        return self.connected_ids or tuple(name for name, _ in self.keys)


def parse_accounts(variable: str, value: str) -> AccountsSetting:
    """`acct_1,acct_2` or `eu:STRIPE_API_KEY_EU,us:STRIPE_API_KEY_US`; empty: none named."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        return AccountsSetting()
    if all(":" not in item for item in items):
        bad = [item for item in items if item != PLATFORM_ACCOUNT and not _CONNECTED_ID.match(item)]
        if bad:
            raise ConfigError(
                variable,
                f"{bad[0]!r} is not a connected account id (acct_…) or {PLATFORM_ACCOUNT!r}; name "
                "accounts with their keys as name:VARIABLE, e.g. eu:STRIPE_API_KEY_EU",
            )
        return AccountsSetting(connected_ids=tuple(dict.fromkeys(items)))
    keys: dict[str, str] = {}
    for item in items:
        name, _, key_variable = (part.strip() for part in item.partition(":"))
        if not _NAME.match(name) or not _VARIABLE.match(key_variable):
            raise ConfigError(
                variable,
                f"{item!r} is not name:VARIABLE (a name of letters, digits, - and _, and the "
                "environment variable that holds that account's key, e.g. eu:STRIPE_API_KEY_EU); "
                "connected account ids and named keys cannot be mixed",
            )
        if name in keys:
            raise ConfigError(variable, f"the account {name!r} is named twice")
        if name == PLATFORM_ACCOUNT:
            raise ConfigError(
                variable,
                f"names an account {PLATFORM_ACCOUNT!r}: that name is a Connect platform's own "
                "account; give the entity another name",
            )
        keys[name] = key_variable
    return AccountsSetting(keys=tuple(keys.items()))


@dataclass(frozen=True)
class Accounts:
    """The accounts a deployment reconciles, and how each is called."""

    connect: bool = False
    setting: AccountsSetting = AccountsSetting()

    def __post_init__(self) -> None:
        if self.connect and self.setting.keys:
            raise ConfigError(
                ACCOUNTS_VARIABLE,
                "names keys (name:VARIABLE) but RECON_STRIPE_CONNECT is on: list connected "
                "account ids (acct_…), or turn RECON_STRIPE_CONNECT off for one key per account",
            )
        if not self.connect and self.setting.connected_ids:
            raise ConfigError(
                ACCOUNTS_VARIABLE,
                "lists connected account ids (acct_…): set RECON_STRIPE_CONNECT=1 to reconcile "
                "a platform's connected accounts",
            )

    @property
    def multi(self) -> bool:
        """Whether days are partitioned by account as well (else the one `default` account)."""
        return self.connect or bool(self.setting.keys)

    @property
    def listed(self) -> tuple[str, ...]:
        """The accounts the setting names; under Connect, empty means every connected account."""
        return self.setting.names if self.multi else (DEFAULT_ACCOUNT,)

    def wanted(self, name: str) -> bool:
        """Whether `name` (e.g. a connected account `GET /v1/accounts` listed) is reconciled."""
        return not self.setting.names or name in self.setting.names

    def key_variable(self, name: str) -> str | None:
        """The variable holding `name`'s key (multi-entity), else None (`STRIPE_API_KEY`)."""
        return dict(self.setting.keys).get(name)

    def stripe_account(self, name: str) -> str | None:
        """The `Stripe-Account` header for `name`: its id under Connect (none for the platform's
        own account), else None."""
        if not self.connect or name in (DEFAULT_ACCOUNT, PLATFORM_ACCOUNT):
            return None
        if not _CONNECTED_ID.match(name):
            raise ConfigError(
                "RECON_STRIPE_CONNECT",
                f"{name!r} is not a connected account id (acct_…) or {PLATFORM_ACCOUNT!r}",
            )
        return name

    def is_platform(self, name: str) -> bool:
        """Whether `name` is a Connect platform's own account."""
        return self.connect and name == PLATFORM_ACCOUNT

    def connected(self, name: str) -> bool:
        """Whether `name` is a connected account of the platform (Connect)."""
        return self.connect and name != PLATFORM_ACCOUNT and name != DEFAULT_ACCOUNT

    def discovered(self, connected_ids: list[str]) -> list[str]:
        """The accounts to reconcile under Connect, given the ids `GET /v1/accounts` listed: the
        platform's own first, then each connected one, limited to those the setting names."""
        return [name for name in (PLATFORM_ACCOUNT, *connected_ids) if self.wanted(name)]

    def check(self, name: str) -> str:
        """`name` if it is an account of this deployment, else a `ConfigError` saying which
        are."""
        if not self.multi:
            if name != DEFAULT_ACCOUNT:
                raise ConfigError(
                    ACCOUNTS_VARIABLE,
                    f"is not set, so the only account is {DEFAULT_ACCOUNT!r}, not {name!r}",
                )
            return name
        if self.setting.names and name not in self.setting.names:
            raise ConfigError(
                ACCOUNTS_VARIABLE, f"does not name {name!r}; it names {', '.join(self.listed)}"
            )
        if self.connect:
            self.stripe_account(name)
        return name


def account_and_day(partition: str) -> tuple[str, str]:
    """A partition key's account and day: `acct_1|2026-11-01` (the day × account partitions:
    Dagster joins the dimensions in name order, `account` then `date`) or `2026-11-01` (the one
    `default` account)."""
    account, sep, day = partition.rpartition("|")
    return (account if sep else DEFAULT_ACCOUNT), day


def partition_key(account: str, day: str, multi: bool) -> str:
    """The partition key of `account`'s `day`: `account|day` when days are partitioned by
    account, else `day`."""
    return f"{account}|{day}" if multi else day
