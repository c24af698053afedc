"""The GL mapping file (RECON_GL_MAPPING, TOML): which accounts each Stripe reporting category
books to. Without one, the mapping that ships (`default_gl_mapping.toml`) is used."""

from __future__ import annotations

import tomllib
from pathlib import Path

from recon_dagster.core.journal import Account, GLMapping

DEFAULT = Path(__file__).with_name("default_gl_mapping.toml")


class GLMappingError(ValueError):
    """The mapping file cannot be read or is not a mapping; the message names the file and the
    place."""


def load(path: str | Path | None = None) -> GLMapping:
    """The mapping in `path` (default: the one that ships)."""
    where = Path(path) if path else DEFAULT
    try:
        data = tomllib.loads(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GLMappingError(f"cannot read the GL mapping {where}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GLMappingError(f"the GL mapping {where} is not valid TOML: {exc}") from None
    stripe = data.get("stripe_account")
    if not isinstance(stripe, str) or not stripe.strip():
        raise GLMappingError(
            f"{where}: `stripe_account` must name the account that mirrors the Stripe balance"
        )
    unknown = sorted(set(data) - {"stripe_account", "categories"})
    if unknown:
        raise GLMappingError(f"{where}: unknown keys {', '.join(unknown)}")
    tables = data.get("categories")
    if not isinstance(tables, dict) or not tables:
        raise GLMappingError(f"{where}: `[categories]` must map each category to its accounts")
    categories = {}
    for name, accounts in tables.items():
        if not isinstance(accounts, dict) or set(accounts) != {"debit", "credit"}:
            raise GLMappingError(
                f'{where}: categories.{name} must be {{ debit = "…", credit = "…" }}'
            )
        debit, credit = accounts["debit"], accounts["credit"]
        if not all(isinstance(a, str) and a.strip() for a in (debit, credit)):
            raise GLMappingError(f"{where}: categories.{name} needs two account names")
        if debit == credit:
            raise GLMappingError(f"{where}: categories.{name} debits and credits {debit!r}")
        categories[name] = Account(debit=debit.strip(), credit=credit.strip())
    return GLMapping(stripe_account=stripe.strip(), categories=categories)
