"""recon_dagster: prove every day that what Stripe collected and what your database recorded
agree.

The public API is loaded on first use, so importing a part of the package (the pure core, the
settings) does not import Dagster and every source with it.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recon_dagster.core.result import CurrencyTotals, Finding, ReconciliationResult
    from recon_dagster.service import (
        BillingReconciliationService,
        create_billing_reconciliation_service,
    )
    from recon_dagster.settings import ConfigError, Settings

_EXPORTS = {
    "BillingReconciliationService": "recon_dagster.service",
    "ConfigError": "recon_dagster.settings",
    "CurrencyTotals": "recon_dagster.core.result",
    "Finding": "recon_dagster.core.result",
    "ReconciliationResult": "recon_dagster.core.result",
    "Settings": "recon_dagster.settings",
    "create_billing_reconciliation_service": "recon_dagster.service",
}
__all__ = [
    "BillingReconciliationService",
    "ConfigError",
    "CurrencyTotals",
    "Finding",
    "ReconciliationResult",
    "Settings",
    "create_billing_reconciliation_service",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'recon_dagster' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
