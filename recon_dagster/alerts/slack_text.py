"""Slack text made safe and consistent: colours, how many ids a message shows, escaping, and the
message body around a check's fields.

Data-derived text (ids, recommendations, error messages) goes into attachment fields that Slack
does not format (no `mrkdwn_in`), escaped per Slack's rules (`&`, `<`, `>`), with `@` followed by
a zero-width space: it cannot ping `@channel`/`<!here>`/`<@U…>` or open a link.
"""

from typing import Any

ORANGE = "#FFA500"
RED = "#FF0000"
GREEN = "#2EB67D"  # a late change that brought a day back within the tolerance
IDS_SHOWN = 5


def escape(text: Any) -> str:
    """Data text made inert for Slack: control characters escaped, mentions and markup defused."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = out.replace("@", "@\u200b")  # '@channel', '@here', '@someone' never ping
    return out.replace("`", "'")


def escape_mrkdwn(text: Any) -> str:
    """`escape`, plus `*`, `_`, `~` broken up: for the message's top-level text, which Slack
    formats.

    Fields are sent unformatted (`mrkdwn_in` empty), so ids there keep their underscores intact.
    """
    out = escape(text)
    for mark in ("*", "_", "~"):
        out = out.replace(mark, mark + "\u200b")
    return out


def late_events(late: dict[str, Any]) -> str:
    """A late change's count, types and first events, as a field's text."""
    events = ", ".join(escape(e) for e in (late.get("events") or [])[:IDS_SHOWN])
    types = escape(late.get("event_types") or "")
    text = f"{int(late.get('event_count') or 0)} event(s) ({types}): {events}"
    return text + locked_period(late)


def locked_period(late: dict[str, Any]) -> str:
    """What a late change to a locked month did, as a sentence (empty for an open month)."""
    month = late.get("locked_month")
    if not month:
        return ""
    if late.get("locked_period_policy") == "reopen":
        return f". {escape(month)} was locked: it is re-opened and its close re-run."
    booked = escape(late.get("booked_in") or "the open month")
    return (
        f". {escape(month)} is locked and stays as closed: the change is booked in {booked} "
        "as a prior-period adjustment."
    )


def message_body(
    *,
    title: str,
    headline: str,
    description: str,
    fields: list[dict[str, Any]],
    footer: str,
    colour: str,
    icon: str,
    link: str | None,
    late: bool,
) -> dict[str, Any]:
    """The message around an evaluation's fields: one attachment Slack shows unformatted (its
    title linked to the Dagster UI when there is a link), and a formatted one-line `text` for
    notifications."""
    if link:
        fields = [*fields, {"title": "Dagster UI", "value": link, "short": False}]
    attachment: dict[str, Any] = {
        "color": colour,
        "fallback": f"{title}: {escape(description)}",
        "title": title,
        "text": escape(description),
        "fields": fields,
        "footer": footer,
        "mrkdwn_in": [],
    }
    if link:
        attachment["title_link"] = link
    return {
        "text": f"{icon} {'Late change: ' if late else ''}{headline}",
        "attachments": [attachment],
    }
