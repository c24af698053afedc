"""One check evaluation, read back from the instance, as the plain figures alerts are built from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from recon_dagster.settings.accounts import DEFAULT_ACCOUNT, account_and_day


@dataclass(frozen=True)
class Evaluation:
    """A check evaluation (charges' or payouts') as stored in the check's execution history."""

    execution_id: int  # the check execution's id: unique in the instance, whatever its storage
    date: str  # the partition: a day, or `account|day` with many Stripe accounts
    passed: bool
    critical: bool  # failed with ERROR severity: above RECON_CRITICAL_PERCENT
    description: str
    figures: dict[str, Any]
    timestamp: float = 0.0  # when the check evaluated, seconds since the epoch
    check: str = "discrepancy_within_tolerance"  # or "payouts_reconciled" (recon_dagster/payouts)

    @property
    def is_payouts(self) -> bool:
        return self.check == "payouts_reconciled"

    @property
    def day(self) -> str:
        return account_and_day(self.date)[1]

    @property
    def account(self) -> str:
        return account_and_day(self.date)[0]

    @property
    def label(self) -> str:
        """How messages name the partition: the day, and another account than `default`."""
        return self.day if self.account == DEFAULT_ACCOUNT else f"{self.day} ({self.account})"

    @property
    def asset(self) -> str:
        return "payout_reconciliation" if self.is_payouts else "reconciliation_report"


def partition_link(
    dashboard_url: str | None, date: str, asset: str = "reconciliation_report"
) -> str | None:
    """The day's partition of `asset` in the Dagster UI, or None without a dashboard."""
    if not dashboard_url:
        return None
    return f"{dashboard_url.rstrip('/')}/assets/{asset}?partition={quote(date, safe='')}"


def percent(value: Any) -> str:
    try:
        return f"{float(value):.2f}%"
    except (TypeError, ValueError):
        return "n/a"


def as_dict(value: Any) -> dict[str, Any] | None:
    """A figure that should be an object (JSON metadata), or None when it is not one."""
    return value if isinstance(value, dict) else None


def as_list(value: Any) -> list[Any]:
    """A figure that should be a list (JSON metadata); empty when it is not one."""
    return value if isinstance(value, list) else []


def dedup_key(date: str, payouts: bool = False) -> str:
    """One incident per day (`date`: the partition), account and domain:
    `billing-reconciliation-<date>`, `billing-payouts-<date>`, and with another account than
    `default`, `billing-reconciliation-<account>-<date>`."""
    account, day = account_and_day(date)
    domain = "payouts" if payouts else "reconciliation"
    return (
        f"billing-{domain}-{day}"
        if account == DEFAULT_ACCOUNT
        else f"billing-{domain}-{account}-{day}"
    )
