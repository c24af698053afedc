"""Slack text made safe and consistent: colours, how many ids a message shows, and escaping.

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
