"""The Slack message for a failed (or, after a late change, newly passing) check evaluation: the
charges' figures here, the payouts' in `payout_messages`."""

from typing import Any

from recon_dagster.alerts.figures import Evaluation, as_dict, as_list, partition_link, percent
from recon_dagster.alerts.payout_messages import build_payout_message
from recon_dagster.alerts.slack_text import (
    GREEN,
    IDS_SHOWN,
    ORANGE,
    RED,
    escape,
    escape_mrkdwn,
    late_events,
    message_body,
)
from recon_dagster.settings.accounts import DEFAULT_ACCOUNT

RECOMMENDATIONS_SHOWN = 3
_MAIN_CLASSES = ("missing_in_database", "missing_in_stripe", "amount_mismatches")


def _ids(values: Any, count: int) -> str:
    ids = list(values) if isinstance(values, list) else []
    shown = ", ".join(escape(i) for i in ids[:IDS_SHOWN])
    more = f" (+{count - len(ids[:IDS_SHOWN])} more)" if count > len(ids[:IDS_SHOWN]) else ""
    return f"{count}" + (f": {shown}{more}" if shown else "")


def _listed(
    f: dict[str, Any], counts: dict, key: str, title: str, sep: str, text
) -> list[dict[str, Any]]:
    """A field listing the first items of class `key` (escaped), or nothing when there are none."""
    items = [i for i in as_list(f.get(key)) if isinstance(i, dict)]
    if not items:
        return []
    more = int(counts.get(key, len(items))) - min(len(items), IDS_SHOWN)
    shown = sep.join(escape(text(i)) for i in items[:IDS_SHOWN])
    return [
        {"title": title, "short": False, "value": shown + (f" (+{more} more)" if more > 0 else "")}
    ]


def build_message(evaluation: Evaluation, dashboard_url: str | None = None) -> dict[str, Any]:
    """The webhook / chat.postMessage body for one failed evaluation."""
    if evaluation.is_payouts:
        return build_payout_message(evaluation, dashboard_url)
    f = evaluation.figures
    cur = escape(f.get("currency") or "")
    date = escape(evaluation.label)
    level = "CRITICAL" if evaluation.critical else "RESOLVED" if evaluation.passed else "WARNING"
    counts = as_dict(f.get("counts")) or {}
    link = partition_link(dashboard_url, evaluation.date)
    title = f"Billing discrepancy {level}: {date}"
    fields = [
        {"title": "Date", "value": escape(evaluation.day), "short": True},
        *(
            [{"title": "Account", "value": escape(evaluation.account), "short": True}]
            if evaluation.account != DEFAULT_ACCOUNT
            else []
        ),
        {
            "title": "Stripe total",
            "value": f"{escape(f.get('stripe_total', 'n/a'))} {cur}".strip(),
            "short": True,
        },
        {
            "title": "Database total",
            "value": f"{escape(f.get('database_total', 'n/a'))} {cur}".strip(),
            "short": True,
        },
        {
            "title": "Discrepancy",
            "value": f"{escape(f.get('discrepancy', 'n/a'))} {cur} "
            f"({percent(f.get('discrepancy_percentage'))})".replace("  ", " "),
            "short": True,
        },
        {
            "title": "Gross discrepancy",
            "value": f"{escape(f.get('gross_discrepancy', 'n/a'))} {cur} "
            f"({percent(f.get('gross_discrepancy_percentage'))})".replace("  ", " "),
            "short": True,
        },
        {
            "title": "Missing in database",
            "value": _ids(f.get("missing_in_database"), int(counts.get("missing_in_database", 0))),
            "short": False,
        },
        {
            "title": "Missing in Stripe",
            "value": _ids(f.get("missing_in_stripe"), int(counts.get("missing_in_stripe", 0))),
            "short": False,
        },
        {
            "title": "Amount mismatches",
            "value": str(int(counts.get("amount_mismatches", 0))),
            "short": True,
        },
    ]
    fields += _listed(
        f,
        counts,
        "disputes",
        "Disputes",
        ", ",
        lambda d: f"{d.get('id')} {d.get('dispute_status')} {d.get('amount')} {d.get('currency')}",
    )
    fields += _listed(
        f,
        counts,
        "invalid_rows",
        "Rows left out (invalid)",
        "; ",
        lambda r: f"{r.get('source')} {r.get('id') or '(no id)'}: {r.get('reason')}",
    )
    others = {
        k: int(v)
        for k, v in counts.items()
        if k not in (*_MAIN_CLASSES, "disputes", "invalid_rows") and v
    }
    if others:
        fields.append(
            {
                "title": "Other discrepancies",
                "value": ", ".join(f"{escape(k)}: {v}" for k, v in sorted(others.items())),
                "short": False,
            }
        )
    recommendations = as_list(f.get("top_recommendations"))
    if recommendations:
        fields.append(
            {
                "title": "Top recommendations",
                "short": False,
                "value": "\n".join(
                    f"{n}. {escape(r)}"
                    for n, r in enumerate(recommendations[:RECOMMENDATIONS_SHOWN], 1)
                ),
            }
        )
    if f.get("error"):
        fields.append({"title": "Error", "value": escape(f["error"]), "short": False})
    late = as_dict(f.get("late_change"))
    if late:
        fields.append(
            {
                "title": "Late change",
                "short": False,
                "value": "Stripe changed this day after it was reconciled: "
                f"{escape(late.get('previous_grade'))} -> {escape(late.get('grade'))}; "
                + late_events(late),
            }
        )
    if f.get("source_note"):
        fields.append({"title": "Stripe source", "value": escape(f["source_note"]), "short": False})
    if f.get("source_mismatches"):
        fields.append(
            {
                "title": "Mirror disagrees with the API",
                "short": False,
                "value": _ids(f.get("source_mismatches"), len(f.get("source_mismatches") or [])),
            }
        )
    if evaluation.critical:
        colour, icon = RED, ":rotating_light:"
    elif evaluation.passed:
        colour, icon = GREEN, ":white_check_mark:"
    else:
        colour, icon = ORANGE, ":warning:"
    return message_body(
        title=title,
        headline=f"Billing discrepancy {level}: {escape_mrkdwn(evaluation.label)}",
        description=evaluation.description,
        fields=fields,
        footer="recon_dagster · discrepancy_within_tolerance",
        colour=colour,
        icon=icon,
        link=link,
        late=bool(late),
    )


def late_change_moved(evaluation: Evaluation) -> bool:
    """A late change that moved the day's check result (pass, warn, critical, either way)."""
    late = evaluation.figures.get("late_change")
    return isinstance(late, dict) and late.get("previous_grade") != late.get("grade")
