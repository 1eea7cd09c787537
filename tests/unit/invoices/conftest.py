"""Builders for invoice documents shared by the invoice unit tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from caisse.invoices.document import InvoiceDocument, InvoiceLine, Party

SELLER_FR = Party(
    legal_name="Appart Compta SAS",
    address_lines=("12 rue de la Paix",),
    postcode="75002",
    city="Paris",
    country="FR",
    vat_number="FR40123456789",
    registration_number="123456789",
    email="factures@appart-compta.example",
)
SELLER_DE = Party(
    legal_name="Buchungsdienst GmbH",
    address_lines=("Hauptstraße 5",),
    postcode="10115",
    city="Berlin",
    country="DE",
    vat_number="DE123456789",
)
BUYER = Party(
    legal_name="Jeanne Dupont",
    address_lines=("3 avenue Foch", "Bâtiment B"),
    postcode="69006",
    city="Lyon",
    country="FR",
    email="jeanne@example.org",
)
BUSINESS_BUYER = Party(
    legal_name="Gîtes de Loire SARL",
    address_lines=("8 rue Royale",),
    postcode="37000",
    city="Tours",
    country="FR",
    vat_number="FR55987654321",
    is_business=True,
)

THREE_LINES = (
    InvoiceLine("Nuitée chambre double", 2, 11_000, Decimal("10")),
    InvoiceLine("Petit-déjeuner", 2, 1_200, Decimal("5.5")),
    InvoiceLine("Frais de service", 1, 2_400, Decimal("20")),
)

DocumentFactory = Callable[..., InvoiceDocument]


def build_document(*, line_count: int | None = None, **overrides: Any) -> InvoiceDocument:
    """A paid French invoice; any field can be overridden, ``line_count`` makes a long one."""
    fields: dict[str, Any] = {
        "kind": "invoice",
        "number": "F-2026-000042",
        "issue_date": dt.date(2026, 1, 31),
        "currency": "eur",
        "seller": SELLER_FR,
        "buyer": BUYER,
        "lines": THREE_LINES,
        "payment_date": dt.date(2026, 1, 30),
        "payment_method": "card",
        "order_reference": "ord_7Hq2",
        "test_mode": False,
        "language": "fr",
        "footer": "Appart Compta SAS au capital de 10 000 € — RCS Paris 123 456 789",
    }
    if line_count is not None:
        fields["lines"] = many_lines(line_count)
    fields.update(overrides)
    return InvoiceDocument(**fields)


def many_lines(count: int) -> tuple[InvoiceLine, ...]:
    rates = (Decimal("20"), Decimal("10"), Decimal("5.5"), Decimal("0"))
    return tuple(
        InvoiceLine(f"Article n°{i} — été", 1 + i % 3, 1_234 + 17 * i, rates[i % 4])
        for i in range(count)
    )


@pytest.fixture
def make_document() -> DocumentFactory:
    return build_document


@pytest.fixture
def business_buyer() -> Party:
    return BUSINESS_BUYER


@pytest.fixture
def seller_de() -> Party:
    return SELLER_DE
