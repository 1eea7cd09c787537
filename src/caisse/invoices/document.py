"""An invoice or credit note as plain data, and its tax breakdown.

Policy: amounts are what the buyer pays, **tax included**, in the currency's minor unit (see
``caisse.money``). The breakdown is computed per VAT rate group, never by adding rounded
per-line figures, so that the totals always add up exactly:

1. line gross = round(quantity × unit_amount) (half to even, ``money.round_minor``);
2. per rate group: gross = Σ line gross, net = round(gross × 100 / (100 + rate)),
   tax = gross − net;
3. line nets are the group net shared among the lines in proportion to their exact net
   (floors first, then one minor unit each to the largest remainders, ties to the earlier line);
   line tax = line gross − line net.

Hence Σ net + Σ tax == Σ gross per group and for the document, and Σ line net == group net, as
EN 16931 requires (BR-S-08, BR-CO-10). The tax computed this way may differ from
round(net × rate) by at most one minor unit, inside EN 16931's tolerance (BR-CO-17).

Credit notes carry the same positive lines and amounts as an invoice: the ``kind`` alone says
that the money goes back to the buyer (type code 381 in Factur-X, "Avoir" on the PDF), which is
how EN 16931 expects credit notes; nothing in caisse stores negative invoice amounts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Literal

from caisse.errors import InvalidRequest
from caisse.money import exponent, normalize_currency, round_minor, to_decimal

Kind = Literal["invoice", "credit_note"]
Language = Literal["fr", "en"]
TaxCategory = Literal["S", "Z", "E"]

_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Party:
    """A seller or buyer as the law wants it printed (name, postal address, identifiers)."""

    legal_name: str
    address_lines: tuple[str, ...]
    postcode: str
    city: str
    country: str
    vat_number: str | None = None
    registration_number: str | None = None  # SIREN (9 digits) or SIRET (14) in France
    email: str | None = None
    # French companies (Code de commerce R123-237): legal form, share capital, RCS city+number.
    legal_form: str | None = None
    share_capital: str | None = None
    rcs: str | None = None
    # A business buyer (company name or VAT number): the B2B payment mentions apply.
    is_business: bool = False

    def __post_init__(self) -> None:
        if not self.legal_name.strip():
            raise InvalidRequest("A party needs a legal name", param="legal_name")
        country = self.country.strip().upper()
        if len(country) != 2 or not country.isalpha():
            raise InvalidRequest(f"Invalid ISO 3166 country: {self.country!r}", param="country")
        object.__setattr__(self, "country", country)
        lines = self.address_lines
        object.__setattr__(
            self, "address_lines", (lines,) if isinstance(lines, str) else tuple(lines)
        )


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One sold item; ``unit_amount`` is tax included, in minor units."""

    description: str
    quantity: Decimal | int
    unit_amount: int
    tax_rate: Decimal  # percent: Decimal("20") for 20 %

    def __post_init__(self) -> None:
        if isinstance(self.unit_amount, bool) or not isinstance(self.unit_amount, int):
            raise InvalidRequest("unit_amount is an integer in minor units", param="unit_amount")
        if self.unit_amount < 0:
            raise InvalidRequest("unit_amount cannot be negative", param="unit_amount")
        if Decimal(self.quantity) <= 0:
            raise InvalidRequest("quantity must be positive", param="quantity")
        rate = Decimal(str(self.tax_rate))
        if not Decimal(0) <= rate < _HUNDRED:
            raise InvalidRequest(f"Invalid tax rate: {self.tax_rate}", param="tax_rate")
        object.__setattr__(self, "tax_rate", rate)

    @property
    def gross(self) -> int:
        """Tax-included line amount, rounded once to the minor unit."""
        return round_minor(Decimal(self.quantity) * self.unit_amount)


@dataclass(frozen=True, slots=True)
class ComputedLine:
    """A line with its share of its rate group's net and tax (minor units)."""

    line: InvoiceLine
    gross: int
    net: int
    tax: int

    @property
    def unit_net(self) -> Decimal:
        """Net unit price in minor units, exact to 1/10 000 of a unit (for display and CII)."""
        return (Decimal(self.net) / Decimal(self.line.quantity)).quantize(Decimal("0.0001"))


@dataclass(frozen=True, slots=True)
class VatBreakdown:
    """One VAT rate group: taxable (net) amount, tax and gross, in minor units."""

    rate: Decimal
    category: TaxCategory
    net: int
    tax: int
    gross: int


@dataclass(frozen=True, slots=True)
class InvoiceTotals:
    lines: tuple[ComputedLine, ...]
    vat: tuple[VatBreakdown, ...]  # highest rate first
    net: int
    tax: int
    gross: int


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    """Everything needed to print and send one invoice or credit note; immutable once built."""

    kind: Kind
    number: str
    issue_date: dt.date
    currency: str
    seller: Party
    buyer: Party
    lines: tuple[InvoiceLine, ...]
    payment_date: dt.date
    payment_method: str  # "card", "sepa_debit", "bank_transfer", "paypal" or free text
    order_reference: str
    related_invoice_number: str | None = None  # the invoice a credit note cancels
    test_mode: bool = False
    language: Language = "fr"
    footer: str | None = None
    # Printed on the PDF and set as the exemption reason for 0 % lines (category E instead of
    # Z), e.g. "TVA non applicable, art. 293 B du CGI" for a French micro-entrepreneur.
    vat_exemption_reason: str | None = None
    _totals: InvoiceTotals | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("invoice", "credit_note"):
            raise InvalidRequest(f"Unknown document kind: {self.kind!r}", param="kind")
        if self.language not in ("fr", "en"):
            raise InvalidRequest(f"Unsupported language: {self.language!r}", param="language")
        if not self.number.strip():
            raise InvalidRequest("An invoice needs a number", param="number")
        lines = tuple(self.lines)
        if not lines:
            raise InvalidRequest("An invoice needs at least one line", param="lines")
        if self.kind == "credit_note" and not self.related_invoice_number:
            # French law (CGI art. 242 nonies A) and EN 16931 BT-25: cite the invoice corrected.
            raise InvalidRequest(
                "A credit note must name the invoice it corrects", param="related_invoice_number"
            )
        object.__setattr__(self, "lines", lines)
        object.__setattr__(self, "currency", normalize_currency(self.currency))
        object.__setattr__(self, "_totals", compute_totals(lines, self.vat_exemption_reason))

    @property
    def totals(self) -> InvoiceTotals:
        assert self._totals is not None  # set in __post_init__
        return self._totals

    @property
    def is_french_seller(self) -> bool:
        """French sellers must print the mentions of the Code de commerce and the CGI."""
        return self.seller.country == "FR"

    @property
    def b2b_mentions(self) -> bool:
        """Late-payment penalties, the 40 € indemnity and the discount terms (Code de commerce
        L441-9, L441-10, D441-5) are owed between businesses only: a French seller selling to a
        business buyer prints them, a consumer's invoice does not."""
        return self.is_french_seller and (self.buyer.is_business or bool(self.buyer.vat_number))


def tax_category(rate: Decimal, exemption_reason: str | None) -> TaxCategory:
    """EN 16931 VAT category (UNTDID 5305): S standard, E exempt (with reason), Z zero rated."""
    if rate > 0:
        return "S"
    return "E" if exemption_reason else "Z"


def compute_totals(
    lines: Sequence[InvoiceLine], exemption_reason: str | None = None
) -> InvoiceTotals:
    """Break tax-included lines down into net, tax and gross (method in the module docstring)."""
    groups: dict[Decimal, list[int]] = {}
    for index, line in enumerate(lines):
        groups.setdefault(line.tax_rate, []).append(index)

    nets: dict[int, int] = {}
    breakdown: list[VatBreakdown] = []
    for rate in sorted(groups, reverse=True):
        indices = groups[rate]
        grosses = [lines[i].gross for i in indices]
        group_gross = sum(grosses)
        divisor = _HUNDRED + rate
        group_net = round_minor(Decimal(group_gross) * _HUNDRED / divisor)
        exact = [Decimal(g) * _HUNDRED / divisor for g in grosses]
        floors = [int(e.to_integral_value(rounding=ROUND_FLOOR)) for e in exact]
        remainder = group_net - sum(floors)
        by_fraction = sorted(range(len(indices)), key=lambda k: (-(exact[k] - floors[k]), k))
        for k in by_fraction[:remainder]:
            floors[k] += 1
        for k, i in enumerate(indices):
            nets[i] = floors[k]
        breakdown.append(
            VatBreakdown(
                rate=rate,
                category=tax_category(rate, exemption_reason),
                net=group_net,
                tax=group_gross - group_net,
                gross=group_gross,
            )
        )

    computed = tuple(
        ComputedLine(line=line, gross=line.gross, net=nets[i], tax=line.gross - nets[i])
        for i, line in enumerate(lines)
    )
    return InvoiceTotals(
        lines=computed,
        vat=tuple(breakdown),
        net=sum(v.net for v in breakdown),
        tax=sum(v.tax for v in breakdown),
        gross=sum(v.gross for v in breakdown),
    )


_SYMBOLS = {"eur": "€", "usd": "$", "gbp": "£", "jpy": "¥", "chf": "CHF"}


def format_money(amount: int | Decimal, currency: str, language: Language) -> str:
    """Amount in minor units for people: '1 234,56 €' in French, '€1,234.56' in English.

    A Decimal amount (a unit price finer than the minor unit) keeps up to two extra digits.
    """
    exp = exponent(currency)
    if isinstance(amount, int):
        value = to_decimal(amount, currency)
    else:
        value = amount.scaleb(-exp)
        step = Decimal(1).scaleb(-exp)
        if value == value.quantize(step):
            value = value.quantize(step)
        else:  # finer than the minor unit: up to two more digits, no trailing zeros
            value = value.quantize(Decimal(1).scaleb(-(exp + 2))).normalize()
    text = f"{abs(value):,}"  # "1,234.56"
    if language == "fr":
        text = text.replace(",", " ").replace(".", ",")
    sign = "-" if value < 0 else ""
    symbol = _SYMBOLS.get(currency.lower(), currency.upper())
    if language == "fr" or len(symbol) > 1:
        return f"{sign}{text} {symbol}"
    return f"{sign}{symbol}{text}"


def format_rate(rate: Decimal, language: Language) -> str:
    """'20 %' / '5,5 %' in French, '20%' / '5.5%' in English."""
    text = format(rate.normalize(), "f")
    if language == "fr":
        return f"{text.replace('.', ',')} %"
    return f"{text}%"


def format_date(value: dt.date, language: Language) -> str:
    """Unambiguous dates: 31/01/2026 in French, 2026-01-31 (ISO 8601) in English."""
    return value.strftime("%d/%m/%Y") if language == "fr" else value.isoformat()
