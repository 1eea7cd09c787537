"""What an invoice prints, taken from the tenant and the order at numbering time.

Policy: a snapshot holds only clean strings. Customer records come from API callers (the
``customer`` object accepts extra keys) and may carry numbers, objects or control characters
that XML 1.0 cannot represent; a snapshot that cannot be drawn or turned into Factur-X would
hold a number forever without ever being issued. So every field is coerced to text here:
characters XML forbids are dropped, single-line fields have their whitespace collapsed, and a
value that is not text at all (an object where a VAT number is expected) is left out.

The seller's legal requirements for a live document (``live_requirements``) are checked
*before* a number is taken, so a refusal never leaves a gap in the series.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal
from typing import Any

from caisse.clock import as_utc
from caisse.errors import InvalidRequest
from caisse.storage import models as m

DEFAULT_COUNTRY = "FR"
# Art. 293 B du CGI: the VAT-free scheme of small French businesses (franchise en base).
FRANCHISE_MENTION = "TVA non applicable, art. 293 B du CGI"
# Local calendar of the seller for issue and payment dates; other countries use UTC.
_TIMEZONES = {
    "FR": "Europe/Paris",
    "BE": "Europe/Brussels",
    "LU": "Europe/Luxembourg",
    "CH": "Europe/Zurich",
    "DE": "Europe/Berlin",
    "ES": "Europe/Madrid",
    "IT": "Europe/Rome",
    "NL": "Europe/Amsterdam",
    "PT": "Europe/Lisbon",
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
}
# XML 1.0 Char production, minus tab/newline/CR handled below; also C1 controls.
_SPACES = re.compile("[\t\r\x0b\x0c\x1c-\x1f\x85\u2028\u2029]")
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


class SellerDetailsIncomplete(InvalidRequest):
    """A live document cannot be numbered: the seller misses a legally required detail."""

    code = "seller_details_incomplete"


def clean_text(value: Any, *, single_line: bool = True, limit: int = 500) -> str | None:
    """``value`` as printable text, or None when it is not text (or a number) at all."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        value = str(value)
    if not isinstance(value, str):
        return None
    # Control "spaces" (vertical tab, form feed…) become spaces, what XML forbids goes, and
    # only "\n" may break a line (in the fields that allow several).
    text = _ILLEGAL.sub("", _SPACES.sub(" ", value.replace("\r\n", "\n")))
    if single_line:
        text = " ".join(text.split())
    else:
        text = "\n".join(" ".join(line.split()) for line in text.split("\n")).strip()
    return text[:limit] or None


def local_date(moment: dt.datetime, country: str) -> dt.date:
    """The calendar date of ``moment`` where the seller is (UTC for unlisted countries)."""
    moment = as_utc(moment)  # SQLite hands back naive UTC values
    name = _TIMEZONES.get(country)
    if name is None:
        return moment.date()
    return moment.astimezone(zoneinfo.ZoneInfo(name)).date()


def seller_snapshot(tenant: m.Tenant) -> dict[str, Any]:
    """The seller as printed, from the tenant's legal details at the time of issue."""
    legal = tenant.legal or {}

    def text(key: str) -> str | None:
        return clean_text(legal.get(key))

    lines = [x for x in (text("address_line1"), text("address_line2")) if x]
    return {
        "legal_name": text("legal_name") or clean_text(tenant.name) or "-",
        "address_lines": lines,
        "postcode": text("postcode") or "",
        "city": text("city") or "",
        "country": text("country") or DEFAULT_COUNTRY,
        "vat_number": text("vat_number"),
        "registration_number": text("registration_number"),
        "email": text("email"),
        "legal_form": text("legal_form"),
        "share_capital": text("share_capital"),
        "rcs": text("rcs"),
    }


def buyer_snapshot(order: m.Order, fallback_country: str) -> dict[str, Any]:
    """The buyer from the order's customer (Stripe-style address keys). A buyer with a
    ``company`` name or a VAT number is a business (the B2B mentions apply)."""
    customer = order.customer or {}
    raw_address = customer.get("address")
    address: dict[str, Any] = raw_address if isinstance(raw_address, dict) else {}
    lines = [x for x in (clean_text(address.get("line1")), clean_text(address.get("line2"))) if x]
    country = (clean_text(address.get("country")) or fallback_country).upper()
    if len(country) != 2 or not country.isascii() or not country.isalpha():
        country = fallback_country
    email = clean_text(customer.get("email"))
    company = clean_text(customer.get("company"))
    vat_number = clean_text(customer.get("vat_number"), limit=30)
    return {
        "legal_name": company or clean_text(customer.get("name")) or email or "Client",
        "address_lines": lines,
        "postcode": clean_text(address.get("postal_code")) or "",
        "city": clean_text(address.get("city")) or "",
        "country": country,
        "vat_number": vat_number,
        "registration_number": None,
        "email": email,
        "is_business": bool(company or vat_number),
    }


def order_lines(order: m.Order) -> list[dict[str, Any]]:
    """The order's lines as printed (descriptions cleaned, may span lines)."""
    return [
        {
            "description": clean_text(li.get("description"), single_line=False) or "-",
            "quantity": int(li["quantity"]),
            "unit_amount": int(li["unit_amount"]),
            "tax_rate": str(li.get("tax_rate") or "0"),
        }
        for li in (order.lines or {}).get("data", [])
    ]


def exemption_reason(
    seller: dict[str, Any], lines: list[dict[str, Any]], configured: str | None
) -> str | None:
    """The VAT exemption mention: the seller's own, else art. 293 B for a French seller with
    no VAT number whose lines are all at 0 % (the usual case of a micro-entrepreneur)."""
    if configured:
        return configured
    zero = all(Decimal(li["tax_rate"]) == 0 for li in lines)
    if seller["country"] == "FR" and not seller["vat_number"] and zero:
        return FRANCHISE_MENTION
    return None


def live_requirements(seller: dict[str, Any], lines: list[dict[str, Any]]) -> list[str]:
    """What the seller misses before a live document may take a number (empty: ready).

    * EN 16931 BR-S-02: a standard-rated line needs the seller's VAT identifier;
    * France (CGI art. 242 nonies A, Code de commerce R123-237): the SIREN or SIRET.
    """
    missing = []
    if seller["country"] == "FR" and not seller["registration_number"]:
        missing.append("registration_number (SIREN or SIRET)")
    if any(Decimal(li["tax_rate"]) > 0 for li in lines) and not seller["vat_number"]:
        missing.append("vat_number (VAT-rated lines, EN 16931 BR-S-02)")
    return missing


def check_live(seller: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    """Raise ``SellerDetailsIncomplete`` unless a live document may be numbered."""
    missing = live_requirements(seller, lines)
    if missing:
        raise SellerDetailsIncomplete(
            "Set the seller details (PATCH /v1/tenant) before live invoices can be issued; "
            f"missing: {', '.join(missing)}",
            param="legal",
        )
