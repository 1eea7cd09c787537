"""Money in minor units: currencies, exponents, conversions and rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from caisse.errors import InvalidRequest
from caisse.money import (
    Money,
    exponent,
    format_amount,
    from_decimal,
    normalize_currency,
    round_minor,
    to_decimal,
)


@pytest.mark.parametrize(("code", "expected"), [("EUR", "eur"), (" usd ", "usd"), ("Jpy", "jpy")])
def test_currency_is_normalised_to_lower_case(code: str, expected: str) -> None:
    assert normalize_currency(code) == expected


@pytest.mark.parametrize("code", ["", "eu", "euro", "e1r", "€", "ÉUR", None])
def test_invalid_currency_is_refused_with_param(code: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        normalize_currency(code)  # type: ignore[arg-type]
    assert info.value.param == "currency"


@pytest.mark.parametrize(
    ("cur", "exp"), [("eur", 2), ("USD", 2), ("jpy", 0), ("KRW", 0), ("bhd", 3), ("kwd", 3)]
)
def test_exponent(cur: str, exp: int) -> None:
    assert exponent(cur) == exp


@pytest.mark.parametrize(
    ("amount", "cur", "text"),
    [
        (1234, "eur", "12.34"),
        (5, "eur", "0.05"),
        (0, "eur", "0.00"),
        (500, "jpy", "500"),
        (1234, "kwd", "1.234"),
        (-250, "usd", "-2.50"),
    ],
)
def test_to_decimal_and_back(amount: int, cur: str, text: str) -> None:
    assert to_decimal(amount, cur) == Decimal(text)
    assert str(to_decimal(amount, cur)) == text
    assert from_decimal(text, cur) == amount
    assert from_decimal(Decimal(text), cur) == amount


def test_from_decimal_refuses_sub_unit_precision() -> None:
    assert from_decimal("19.9", "eur") == 1990
    with pytest.raises(InvalidRequest):
        from_decimal("19.999", "eur")
    with pytest.raises(InvalidRequest):
        from_decimal("100.5", "jpy")


@pytest.mark.parametrize(
    ("value", "expected"), [("2.5", 2), ("3.5", 4), ("2.51", 3), ("-2.5", -2), ("7", 7)]
)
def test_round_minor_is_half_to_even(value: str, expected: int) -> None:
    assert round_minor(Decimal(value)) == expected


def test_format_amount_and_money() -> None:
    assert format_amount(123456, "eur") == "1234.56 EUR"
    money = Money(2000, "EUR")
    assert money.currency == "eur"
    assert str(money) == "20.00 EUR"
    assert Money(2000, "eur") == money


@pytest.mark.parametrize("amount", [12.5, "100", True, Decimal(1)])
def test_money_amounts_are_integers(amount: object) -> None:
    with pytest.raises(InvalidRequest):
        Money(amount, "eur")  # type: ignore[arg-type]
