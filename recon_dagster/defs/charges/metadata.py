"""What people read in the Dagster UI about one day's reconciliation, and what alerts need.

Percentages are floats so the UI can plot them across partitions; money is shown exactly, as
major-unit text, with integer minor units beside it for plotting.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import dagster as dg
import polars as pl

from recon_dagster.core.finding_frame import to_objects
from recon_dagster.core.result import ReconciliationResult
from recon_dagster.money import format_major

LARGEST_SHOWN = 10


def _cell(text: object) -> str:
    """Table cell text that cannot break the Markdown table or inject markup."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def largest_discrepancies_markdown(findings: pl.DataFrame, limit: int = LARGEST_SHOWN) -> str:
    """The `limit` findings with the most money at stake (`result.findings_frame`), ties by class
    and payment id; rows with no amount are listed in `invalid_rows` instead."""
    ranked = to_objects(
        findings.filter(pl.col("kind") != "invalid_rows")
        .sort(
            pl.col("difference").abs(),
            "kind",
            "payment_id",
            descending=[True, False, False],
            maintain_order=True,
        )
        .head(limit)
    )
    if not ranked:
        return "No discrepancies."
    lines = ["| class | payment | Stripe | database | difference |", "|---|---|---:|---:|---:|"]
    for f in ranked:
        stripe = (
            format_major(f.stripe_amount, f.stripe_currency or f.currency)
            if f.stripe_amount is not None
            else "—"
        )
        db = (
            format_major(f.database_amount, f.database_currency or f.currency)
            if f.database_amount is not None
            else "—"
        )
        diff = format_major(f.difference, f.currency) if f.kind != "currency_mismatches" else "—"
        lines.append(f"| {f.kind} | {_cell(f.payment_id)} | {stripe} | {db} | {diff} |")
    return "\n".join(lines)


def totals_markdown(result: ReconciliationResult) -> str:
    lines = [
        "| currency | Stripe | database | discrepancy | % | gross % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in result.totals:
        lines.append(
            f"| {t.currency} | {format_major(t.stripe_total, t.currency)} | "
            f"{format_major(t.database_total, t.currency)} "
            f"| {format_major(t.discrepancy, t.currency)} | {t.discrepancy_percentage:.4f} | "
            f"{t.gross_discrepancy_percentage:.4f} |"
        )
    return "\n".join(lines)


def report_metadata(result: ReconciliationResult, report_id: str | None = None) -> dict[str, Any]:
    """Materialization metadata for one day (one partition)."""
    cur = result.currency or "USD"
    findings = result.findings_frame
    meta: dict[str, Any] = {
        "status": result.status,
        "currency": result.currency or "",
        "stripe_total": format_major(result.stripe_total, cur),
        "database_total": format_major(result.database_total, cur),
        "discrepancy": format_major(result.discrepancy, cur),
        "stripe_total_minor": result.stripe_total,
        "database_total_minor": result.database_total,
        "discrepancy_minor": result.discrepancy,
        "discrepancy_percentage": dg.MetadataValue.float(float(result.discrepancy_percentage)),
        "gross_discrepancy": format_major(result.gross_discrepancy, cur),
        "gross_discrepancy_percentage": dg.MetadataValue.float(
            float(result.gross_discrepancy_percentage)
        ),
        **{f"count_{kind}": n for kind, n in result.counts().items()},
        "stripe_rows": result.stripe_count,
        "database_rows": result.database_count,
        "largest_discrepancies": dg.MetadataValue.md(largest_discrepancies_markdown(findings)),
        "totals_by_currency": dg.MetadataValue.md(totals_markdown(result)),
        "recommendations": dg.MetadataValue.md(
            "\n".join(f"1. {_cell(r)}" for r in result.recommendations)
        ),
    }
    disputes = findings.filter(pl.col("kind") == "disputes")
    if disputes.height:
        meta["disputes"] = dg.MetadataValue.md(disputes_markdown(disputes))
    invalid = findings.filter(pl.col("kind") == "invalid_rows")
    if invalid.height:
        meta["invalid_rows"] = dg.MetadataValue.md(invalid_rows_markdown(invalid))
    if report_id:
        meta["report_id"] = report_id
    return meta


def disputes_markdown(disputes: pl.DataFrame, limit: int = LARGEST_SHOWN) -> str:
    lines = ["| charge | dispute | status | amount | reason |", "|---|---|---|---:|---|"]
    for f in to_objects(disputes.head(limit)):
        amount = format_major(f.stripe_amount, f.currency) if f.stripe_amount is not None else "—"
        lines.append(
            f"| {_cell(f.payment_id)} | {_cell(f.dispute_id or '—')} | "
            f"{_cell(f.dispute_status or '—')} | {amount} | {_cell(f.detail)} |"
        )
    if disputes.height > limit:
        lines.append(
            f"\n{disputes.height - limit} more in the report store (`reconciliation_line_items`)."
        )
    return "\n".join(lines)


def invalid_rows_markdown(rows: pl.DataFrame, limit: int = LARGEST_SHOWN) -> str:
    lines = ["| source | id | created | column | reason |", "|---|---|---|---|---|"]
    for f in to_objects(rows.head(limit)):
        created = f.stripe_created or f.database_created
        lines.append(
            f"| {f.source} | {_cell(f.payment_id or '—')} | "
            f"{created.isoformat() if created else '—'} "
            f"| {_cell(f.column or '—')} | {_cell(f.detail)} |"
        )
    if rows.height > limit:
        lines.append(
            f"\n{rows.height - limit} more in the report store (`reconciliation_line_items`)."
        )
    return "\n".join(lines)


def alert_figures(
    result: ReconciliationResult, *, tolerance: Decimal, critical: Decimal, grade: str
) -> dict[str, Any]:
    """The figures an alert needs, as check metadata (JSON-safe, money as exact strings)."""
    body = result.to_json_dict()
    return {
        "date": body["date"],
        "grade": grade,
        "status": result.status,
        "currency": body["currency"] or "",
        "stripe_total": body["stripe_total"],
        "database_total": body["database_total"],
        "discrepancy": body["discrepancy"],
        "discrepancy_percentage": dg.MetadataValue.float(float(result.discrepancy_percentage)),
        "gross_discrepancy": body["gross_discrepancy"],
        "gross_discrepancy_percentage": dg.MetadataValue.float(
            float(result.gross_discrepancy_percentage)
        ),
        "tolerance_percentage": dg.MetadataValue.float(float(tolerance)),
        "critical_percentage": dg.MetadataValue.float(float(critical)),
        "counts": dg.MetadataValue.json(result.counts()),
        "missing_in_database": dg.MetadataValue.json(result.missing_in_database[:50]),
        "missing_in_stripe": dg.MetadataValue.json(result.missing_in_stripe[:50]),
        "disputes": dg.MetadataValue.json(
            [
                {k: d.get(k) for k in ("id", "amount", "currency", "dispute_id", "dispute_status")}
                for d in body["disputes"][:20]
            ]
        ),
        "invalid_rows": dg.MetadataValue.json(body["invalid_rows"][:20]),
        "totals_by_currency": dg.MetadataValue.json(body["totals_by_currency"]),
        "top_recommendations": dg.MetadataValue.json(list(result.recommendations[:3])),
        "error": result.error or "",
        "stripe_source": result.stripe_source,
        "source_note": result.source_note or "",
        "source_mismatches": dg.MetadataValue.json(list(result.source_mismatches[:50])),
    }
