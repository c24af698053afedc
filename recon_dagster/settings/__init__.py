"""Every environment variable, parsed and validated in one place.

A bad value stops here, before anything is written, with a message that names the variable and
the problem. Defaults serve the demo (`recon-dagster demo`). Secrets (the Stripe key, database
URLs that may carry a password, webhook URLs, routing keys) are never echoed back: errors about
them name the variable only.

- `variables.py`: the table of settings, the only code that reads the environment;
- `parsing.py`: how each kind of value is read, and `ConfigError`;
- `model.py`: `Settings` (and the payments and bank tables) assembled from the table;
- `docs.py`: `.env.example` and the README's table, generated from the table.
- `allocator.py`: the one variable that is not ours, Polars' allocator option, which the step
  processes get.
"""

from recon_dagster.settings.model import BankTable, PaymentsTable, Settings
from recon_dagster.settings.parsing import (
    AMOUNT_UNITS,
    AmountUnit,
    ConfigError,
    parse_amount_unit,
    parse_identifier,
    parse_percent,
    parse_timezone,
    redact_url,
    scrub,
)
from recon_dagster.settings.variables import MATCH_MODES, SECRETS, VARIABLES, default

__all__ = [
    "AMOUNT_UNITS",
    "MATCH_MODES",
    "SECRETS",
    "VARIABLES",
    "AmountUnit",
    "BankTable",
    "ConfigError",
    "PaymentsTable",
    "Settings",
    "default",
    "parse_amount_unit",
    "parse_identifier",
    "parse_percent",
    "parse_timezone",
    "redact_url",
    "scrub",
]
