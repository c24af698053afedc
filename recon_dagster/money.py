"""Currencies and units: integer minor units inside, `Decimal` major units only at the edges.

Amounts are compared in Stripe's smallest currency unit. For every currency that is the ISO 4217
minor unit, with one documented exception (ISK, see `_STRIPE_OVERRIDES`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pycountry

# ISO 4217 exponents that are not 2. Every other currency code has two decimals.
# Source: ISO 4217 list one (current currencies and funds), 2024 edition.
_ISO_EXPONENTS: dict[str, int] = {
    # zero-decimal
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    # three-decimal
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    # four-decimal
    "CLF": 4,
    "UYW": 4,
}

# Where Stripe's smallest unit is not the ISO minor unit. Stripe takes ISK amounts in hundredths
# ("special cases" in Stripe's currency docs): 1 ISK is amount=100 in the API, so a table that
# stores ISK in major units must be scaled by 100 to compare with Stripe.
_STRIPE_OVERRIDES: dict[str, int] = {"ISK": 2}


# Every ISO 4217 code (pycountry keeps the list current), and those listed above.
ISO_CODES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.currencies) | frozenset(
    _ISO_EXPONENTS
)


def is_iso_currency(code: str) -> bool:
    """Is `code` (any case) an ISO 4217 currency code? 'xyz' is three letters but no currency."""
    return isinstance(code, str) and code.strip().upper() in ISO_CODES


class CurrencyError(ValueError):
    """A currency code that is not three ASCII letters."""


def normalize_currency(code: object) -> str:
    """Upper-case ISO code; Stripe sends lower case, tables often upper."""
    if not isinstance(code, str) or len(code.strip()) != 3 or not code.strip().isalpha():
        raise CurrencyError(f"{code!r} is not a three-letter ISO 4217 currency code")
    return code.strip().upper()


def exponent(currency: str) -> int:
    """Digits after the decimal point in the unit that Stripe amounts count."""
    code = normalize_currency(currency)
    if code in _STRIPE_OVERRIDES:
        return _STRIPE_OVERRIDES[code]
    return _ISO_EXPONENTS.get(code, 2)


def exponents_table() -> dict[str, int]:
    """Every currency whose exponent is not 2, for vectorised conversion (others default to 2)."""
    return {**_ISO_EXPONENTS, **_STRIPE_OVERRIDES}


def to_major(minor: int, currency: str) -> Decimal:
    """Integer minor units -> exact `Decimal` major units (1999 USD -> Decimal('19.99'))."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor units must be an int, got {type(minor).__name__}")
    return Decimal(minor).scaleb(-exponent(currency))


def to_minor(major: Decimal | str | int, currency: str) -> int:
    """Exact major units -> integer minor units; refuses anything that is not a whole minor unit."""
    if isinstance(major, float):
        raise TypeError("major amounts must be Decimal, str or int, never float")
    try:
        value = Decimal(major)
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{major!r} is not a decimal amount") from exc
    if not value.is_finite():
        raise ValueError(f"{major!r} is not a finite amount")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(
            f"{major} {normalize_currency(currency)} is not a whole number of minor units "
            f"({exponent(currency)} decimals)"
        )
    return int(scaled)


def format_major(minor: int, currency: str) -> str:
    """Human text for alerts and tables: '1,234.50 USD', '1,500 JPY'."""
    value = to_major(minor, currency)
    places = exponent(currency)
    return f"{value:,.{places}f} {normalize_currency(currency)}"
