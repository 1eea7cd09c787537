"""Money as integer minor units plus an ISO 4217 currency; the only place that converts units.

Stripe's list of zero-decimal and three-decimal currencies
(https://docs.stripe.com/currencies#zero-decimal) decides how many minor units make a major one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from caisse.errors import InvalidRequest

ZERO_DECIMAL_CURRENCIES = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL_CURRENCIES = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])

_CURRENCY_RE = re.compile(r"^[a-z]{3}$")


def normalize_currency(code: str) -> str:
    """Lower-case ISO code, as Stripe writes them; refuse anything that is not three letters."""
    value = (code or "").strip().lower()
    if not _CURRENCY_RE.match(value):
        raise InvalidRequest(f"Invalid currency: {code!r}", param="currency")
    return value


def exponent(currency: str) -> int:
    cur = currency.lower()
    if cur in ZERO_DECIMAL_CURRENCIES:
        return 0
    if cur in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def to_decimal(amount: int, currency: str) -> Decimal:
    """Minor units to a major-unit Decimal: 1234 EUR cents -> Decimal('12.34')."""
    exp = exponent(currency)
    return (Decimal(amount) / (Decimal(10) ** exp)).quantize(Decimal(1).scaleb(-exp))


def from_decimal(value: Decimal | str, currency: str) -> int:
    """Major units (as Xsolla sends them) to minor units; refuses sub-unit precision."""
    exp = exponent(currency)
    dec = Decimal(str(value))
    scaled = dec.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise InvalidRequest(f"Amount {value} has more than {exp} decimals for {currency}")
    return int(scaled)


def round_minor(value: Decimal) -> int:
    """Round a minor-unit Decimal to an integer, half to even (banker's), as tax engines do."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def format_amount(amount: int, currency: str) -> str:
    """'12.34 EUR' for humans (CLI, emails); invoices use their own locale-aware formatting."""
    return f"{to_decimal(amount, currency)} {currency.upper()}"


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise InvalidRequest("Amounts are integers in the currency's minor unit")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    def __str__(self) -> str:
        return format_amount(self.amount, self.currency)
