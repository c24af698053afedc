"""Connection errors that say what and where, never with the password."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from recon_dagster.settings import ConfigError, redact_url

URL_VARIABLE = "RECON_DATABASE_URL"


def scrub(exc: BaseException, url: str) -> str:
    """The driver's message on one line, with the URL's password removed should the driver echo it."""
    text = " ".join(str(exc).split())
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    text = text.replace(url, redact_url(url))
    for secret in {password, unquote(password or "")} - {None, ""}:
        text = text.replace(secret, "***")
    return text


def cannot_connect(url: str, exc: BaseException, verb: str = "connect to") -> ConfigError:
    return ConfigError(URL_VARIABLE, f"cannot {verb} {redact_url(url)} ({scrub(exc, url)})")
