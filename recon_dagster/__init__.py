"""recon_dagster: prove every day that what Stripe collected and what your database recorded agree."""

from .core.result import CurrencyTotals, Finding, ReconciliationResult
from .service import BillingReconciliationService, create_billing_reconciliation_service
from .settings import ConfigError, Settings

__all__ = [
    "BillingReconciliationService",
    "ConfigError",
    "CurrencyTotals",
    "Finding",
    "ReconciliationResult",
    "Settings",
    "create_billing_reconciliation_service",
]
