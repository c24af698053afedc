"""recon_dagster: prove every day that what Stripe collected and what your database recorded agree."""

from recon_dagster.core.result import CurrencyTotals, Finding, ReconciliationResult
from recon_dagster.service import (
    BillingReconciliationService,
    create_billing_reconciliation_service,
)
from recon_dagster.settings import ConfigError, Settings

__all__ = [
    "BillingReconciliationService",
    "ConfigError",
    "CurrencyTotals",
    "Finding",
    "ReconciliationResult",
    "Settings",
    "create_billing_reconciliation_service",
]
