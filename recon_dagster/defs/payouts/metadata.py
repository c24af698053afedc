"""What a day's payout reconciliation shows in the UI and hands to the alerts: counts, the
problem payouts and deposits, money as exact major-unit strings."""

from __future__ import annotations

from typing import Any

import dagster as dg

from recon_dagster.core.payout_result import PayoutResult

SHOWN = 20  # problem payouts listed in metadata and alerts; the counts say how many in all


def payout_figures(result: PayoutResult) -> dict[str, Any]:
    """Plain figures (JSON-able) for the check's metadata, from which alerts are written."""
    data = result.to_json_dict()
    problems = [p for p in data["payouts"] if set(p["problems"]) - {"awaiting_bank"}]
    return {
        "date": result.first.isoformat(),
        "domain": "payouts",
        "status": result.status,
        "severity": result.severity(),
        "bank_checked": result.bank_checked,
        "counts": result.counts(),
        "problem_payouts": [
            {
                k: p[k]
                for k in (
                    "id",
                    "amount",
                    "currency",
                    "status",
                    "difference",
                    "problems",
                    "failure_code",
                )
            }
            for p in problems[:SHOWN]
        ],
        "deposits_without_payout": data["deposits_without_payout"][:SHOWN],
        "error": result.error,
        "stripe_source": result.stripe_source,
        "source_note": result.source_note,
        "source_mismatches": list(result.source_mismatches[:SHOWN]),
    }


def payout_metadata(result: PayoutResult, report_id: str) -> dict[str, dg.MetadataValue]:
    figures = payout_figures(result)
    return {
        "report_id": dg.MetadataValue.text(report_id),
        "status": dg.MetadataValue.text(result.status),
        "payouts": dg.MetadataValue.int(figures["counts"]["payouts"]),
        "counts": dg.MetadataValue.json(figures["counts"]),
        "problem_payouts": dg.MetadataValue.json(figures["problem_payouts"]),
        "deposits_without_payout": dg.MetadataValue.json(figures["deposits_without_payout"]),
        "bank_checked": dg.MetadataValue.bool(result.bank_checked),
        "stripe_source": dg.MetadataValue.text(result.stripe_source),
    }
