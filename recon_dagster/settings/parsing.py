"""How each kind of setting is read from its text: one parser per kind, each raising a
`ConfigError` that names the variable and the problem (never a secret's value)."""

import math
import re
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# What a table's amount column holds: integer minor units (cents) or exact major units (dollars).
AmountUnit = Literal["minor", "major"]
AMOUNT_UNITS: tuple[AmountUnit, ...] = get_args(AmountUnit)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_SERVER_SCHEMES = {
    "postgresql": ("postgresql://", "postgres://"),
    "mysql": ("mysql://", "mariadb://"),
}
_URL_EXAMPLES = {
    "postgresql": "postgresql://user@host:5432/dbname",
    "mysql": "mysql://user:password@host:3306/dbname",
    "duckdb": "duckdb:///path/to/file.duckdb",
    "sqlite": "sqlite:///path/to/file.db (sqlite:////abs/path.db)",
}


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""

    def __init__(self, variable: str, problem: str):
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


def redact_url(url: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`, for messages."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def scrub(exc: BaseException, url: str) -> str:
    """An error's message on one line, with `url`'s password removed should the driver echo it."""
    text = " ".join(str(exc).split())
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    text = text.replace(url, redact_url(url))
    for secret in {password, unquote(password or "")} - {None, ""}:
        text = text.replace(secret, "***")
    return text


def parse_text(variable: str, value: str) -> str | None:
    """Any text; None when empty."""
    return value.strip() or None


def parse_identifier(variable: str, value: str, *, qualified: bool = False) -> str:
    """A SQL identifier we will quote; `schema.table` when `qualified`."""
    parts = value.split(".") if qualified else [value]
    if not value or len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        shape = "a table name or schema.table" if qualified else "a column name"
        raise ConfigError(
            variable,
            f"{value!r} is not a valid SQL identifier: expected {shape} of letters, digits "
            "and underscores, not starting with a digit",
        )
    return value


def parse_table(variable: str, value: str) -> str:
    """A table name, or `schema.table`."""
    return parse_identifier(variable, value.strip(), qualified=True)


def parse_column(variable: str, value: str) -> str:
    return parse_identifier(variable, value.strip())


def parse_optional_column(variable: str, value: str) -> str | None:
    """A column name, or None when empty (the column is not mapped)."""
    return parse_identifier(variable, value.strip()) if value.strip() else None


def parse_optional_table(variable: str, value: str) -> str | None:
    return parse_table(variable, value) if value.strip() else None


def parse_percent(variable: str, value: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        raise ConfigError(
            variable, f"{value!r} is not a number: expected a percentage such as 1 or 0.5"
        ) from None
    if not number.is_finite() or number < 0 or number > 100:
        raise ConfigError(
            variable, f"{value!r} is out of range: expected a percentage from 0 to 100"
        )
    return number


def parse_bool(variable: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(variable, f"{value!r} is not a boolean: expected true or false")


def parse_timezone(variable: str, value: str) -> str:
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            variable,
            f"{value!r} is not a known IANA time zone (for example UTC or America/New_York)",
        ) from None
    return value.strip()


def parse_date(variable: str, value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(variable, f"{value!r} is not a date: expected YYYY-MM-DD") from None


def parse_moment(variable: str, value: str) -> datetime | None:
    """A date (its midnight) or an ISO timestamp, naive when no offset is given (the caller
    places it in a time zone); None when empty."""
    text = value.strip()
    if not text:
        return None
    try:
        if len(text) <= 10:
            return datetime.combine(date.fromisoformat(text), time(0))
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            variable,
            f"{value!r} is not a date or timestamp: expected YYYY-MM-DD or "
            "YYYY-MM-DDTHH:MM:SS with an optional offset such as +00:00",
        ) from None


def in_zone(moment: datetime | None, tz: str) -> datetime | None:
    """A `parse_moment` value placed in `tz` when it has no offset of its own."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(tz))


def parse_choice(variable: str, value: str, choices: tuple[str, ...], what: str) -> str:
    """One of `choices` (any case)."""
    text = value.strip().lower()
    if text not in choices:
        listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"
        raise ConfigError(variable, f"{value!r} is not {what}: expected {listed}")
    return text


def parse_amount_unit(variable: str, value: str) -> AmountUnit:
    return "major" if parse_choice(variable, value, AMOUNT_UNITS, "a unit") == "major" else "minor"


def parse_positive(variable: str, value: str, kind: type = float, *, allow_zero: bool = False):
    try:
        number = kind(value.strip())
    except ValueError:
        raise ConfigError(
            variable, f"{value!r} is not a {'whole ' if kind is int else ''}number"
        ) from None
    if number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(
            variable, f"{value!r} must be {'zero or more' if allow_zero else 'greater than zero'}"
        )
    return number


def parse_count(variable: str, value: str) -> int:
    """A whole number, zero or more."""
    return parse_positive(variable, value, int, allow_zero=True)


def parse_positive_int(variable: str, value: str) -> int:
    """A whole number greater than zero."""
    return parse_positive(variable, value, int)


def parse_hours(variable: str, value: str) -> float:
    return parse_positive(variable, value, float, allow_zero=True)


def parse_seconds(variable: str, value: str) -> float:
    return parse_positive(variable, value, float)


def parse_rate(variable: str, value: str) -> float | None:
    """Requests per second: a positive, finite number; None when empty (the default for the
    key's mode)."""
    if not value.strip():
        return None
    number = parse_positive(variable, value, float)
    if not math.isfinite(number):
        raise ConfigError(variable, f"{value!r} is not a finite number of requests per second")
    return number


def parse_statuses(variable: str, value: str) -> tuple[str, ...]:
    """Comma-separated statuses, at least one."""
    statuses = tuple(s.strip() for s in value.split(",") if s.strip())
    if not statuses:
        raise ConfigError(variable, "needs at least one status, for example succeeded,paid")
    return statuses


def parse_http_url(variable: str, value: str) -> str | None:
    """An http(s) URL without a trailing slash; None when empty."""
    text = value.strip()
    if text and not text.startswith(("http://", "https://")):
        raise ConfigError(variable, f"{text!r} is not an http(s) URL")
    return text.rstrip("/") or None


def parse_webhook_url(variable: str, value: str) -> str | None:
    """A secret http(s) URL, as given: a wrong one is named, never echoed."""
    text = value.strip()
    if text and not text.startswith(("http://", "https://")):
        raise ConfigError(
            variable, "is not an http(s) URL: expected https://hooks.slack.com/services/..."
        )
    return text or None


def parse_database_url(
    variable: str,
    value: str,
    *,
    servers: tuple[str, ...] = ("postgresql",),
    files: tuple[str, ...] = ("duckdb",),
    secret: bool = True,
) -> str:
    """A server URL (`postgresql://…`, `mysql://…`) or a file URL (`duckdb:///path`,
    `sqlite:////absolute`) of the kinds `variable` takes, as given (see `resolve_file_url`)."""
    text = value.strip()
    if any(text.startswith(_SERVER_SCHEMES[kind]) for kind in servers):
        try:
            urlsplit(text).port  # noqa: B018 - a bad port raises here, before any connection
        except ValueError:
            raise ConfigError(variable, "has a port that is not a number") from None
        return text
    for kind in files:
        if text.startswith(f"{kind}:///"):
            if not text[len(f"{kind}:///") :]:
                raise ConfigError(
                    variable, f"a {kind} URL needs a file path: {kind}:///data/app.{kind}"
                )
            return text
    raise ConfigError(
        variable,
        "expected "
        + " or ".join(_URL_EXAMPLES[kind] for kind in (*servers, *files))
        + ("" if secret else f", got {value!r}"),
    )


def resolve_file_url(url: str, base_dir: Path) -> str:
    """A file URL (`duckdb:///relative`, `sqlite:////absolute`) made absolute against `base_dir`;
    a server URL as it is."""
    kind, sep, raw = url.partition(":///")
    if not sep or kind not in ("duckdb", "sqlite"):
        return url
    path = Path(raw) if raw.startswith("/") else (base_dir / raw)
    if not raw.startswith("/") and not path.exists() and Path("/" + raw).is_file():
        path = Path("/" + raw)  # `sqlite:///tmp/app.db` meant the absolute path (connectorx's form)
    return f"{kind}:///{path.resolve()}"


def parse_balances(variable: str, value: str) -> dict[str, int] | None:
    """`usd=1234.56,eur=0` (major units, exact) -> {"USD": 123456, "EUR": 0}; None when empty."""
    from recon_dagster.money import CurrencyError, normalize_currency, to_minor

    if not value.strip():
        return None
    balances: dict[str, int] = {}
    for part in value.split(","):
        currency, sep, amount = part.partition("=")
        try:
            code = normalize_currency(currency)
            if not sep or code in balances:
                raise ValueError("each currency once, as currency=amount")
            balances[code] = to_minor(amount.strip(), code)
        except (CurrencyError, ValueError) as exc:
            raise ConfigError(
                variable, f"{part.strip()!r}: {exc} (expected e.g. usd=1234.56,eur=0)"
            ) from None
    return balances


def parse_existing_file(variable: str, value: str) -> str | None:
    """The path of a file that exists; None when empty."""
    if not value.strip():
        return None
    path = Path(value.strip()).expanduser()
    if not path.is_file():
        raise ConfigError(variable, f"{value.strip()!r} is not a file")
    return str(path)
