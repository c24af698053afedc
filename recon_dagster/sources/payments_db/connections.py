"""Connection errors that say what and where, never with the password."""

from __future__ import annotations

from recon_dagster.settings import ConfigError, redact_url, scrub

URL_VARIABLE = "RECON_DATABASE_URL"


def cannot_connect(url: str, exc: BaseException, verb: str = "connect to") -> ConfigError:
    return ConfigError(URL_VARIABLE, f"cannot {verb} {redact_url(url)} ({scrub(exc, url)})")
