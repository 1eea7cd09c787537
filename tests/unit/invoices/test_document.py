"""The tax breakdown of tax-included amounts: exact sums, per-rate rounding, validation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caisse.errors import InvalidRequest
from caisse.invoices.document import (
    InvoiceLine,
    Party,
    compute_totals,
    format_date,
    format_money,
    format_rate,
)
from caisse.money import round_minor

RATES = [Decimal("20"), Decimal("10"), Decimal("5.5"), Decimal("2.1"), Decimal("0")]


def line(unit: int, rate: str, quantity: Decimal | int = 1) -> InvoiceLine:
    return InvoiceLine("item", quantity, unit, Decimal(rate))


def test_single_line_splits_gross_into_net_and_tax() -> None:
    totals = compute_totals([line(1200, "20")])
    assert (totals.net, totals.tax, totals.gross) == (1000, 200, 1200)
    assert totals.lines[0].net == 1000
    assert totals.vat[0].category == "S"


def test_mixed_rates_20_10_5_5_0(make_document) -> None:
    doc = make_document(
        lines=(
            line(1199, "20"),
            line(1099, "10", 3),
            line(499, "5.5", 2),
            line(1500, "0"),
            line(1, "20"),
        )
    )
    totals = doc.totals
    by_rate = {v.rate: v for v in totals.vat}
    assert [v.rate for v in totals.vat] == [Decimal(20), Decimal(10), Decimal("5.5"), Decimal(0)]
    # 20 %: gross 1200 -> net 1000, tax 200 (per group, not 999 + 1 per line)
    assert (by_rate[Decimal(20)].net, by_rate[Decimal(20)].tax) == (1000, 200)
    # 10 %: gross 3297 -> net round(2997.27) = 2997
    assert (by_rate[Decimal(10)].net, by_rate[Decimal(10)].tax) == (2997, 300)
    # 5.5 %: gross 998 -> net round(945.97) = 946
    assert (by_rate[Decimal("5.5")].net, by_rate[Decimal("5.5")].tax) == (946, 52)
    assert (by_rate[Decimal(0)].net, by_rate[Decimal(0)].tax, by_rate[Decimal(0)].category) == (
        1500,
        0,
        "Z",
    )
    assert totals.gross == 1200 + 3297 + 998 + 1500
    assert totals.net + totals.tax == totals.gross
    # the 1-cent line takes no share it cannot carry
    assert [(c.net, c.tax) for c in totals.lines if c.line.tax_rate == 20] == [(999, 200), (1, 0)]


def test_zero_rate_with_exemption_reason_is_category_e(make_document) -> None:
    doc = make_document(
        lines=(line(5000, "0"),), vat_exemption_reason="TVA non applicable, art. 293 B du CGI"
    )
    assert doc.totals.vat[0].category == "E"


def test_zero_decimal_currency_jpy(make_document) -> None:
    doc = make_document(currency="JPY", lines=(line(1100, "10"), line(333, "10", 3)))
    assert doc.currency == "jpy"
    assert (doc.totals.net, doc.totals.tax, doc.totals.gross) == (1908, 191, 2099)
    assert format_money(doc.totals.gross, "jpy", "en") == "¥2,099"
    assert format_money(doc.totals.gross, "jpy", "fr") == "2 099 ¥"


def test_many_small_lines_share_the_group_net_exactly() -> None:
    totals = compute_totals([line(1, "20") for _ in range(1000)])
    assert (totals.net, totals.tax) == (833, 167)
    assert sum(c.net for c in totals.lines) == 833
    assert {c.net for c in totals.lines} == {0, 1}
    # ties go to the earlier lines, so the result is stable
    assert all(c.net == 1 for c in totals.lines[:833])


def test_fractional_quantity_rounds_line_gross_half_even() -> None:
    assert line(999, "20", Decimal("1.5")).gross == 1498  # 1498.5 -> 1498
    assert line(1001, "20", Decimal("1.5")).gross == 1502  # 1501.5 -> 1502


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5_000_000),
            st.sampled_from(RATES),
            st.one_of(
                st.integers(min_value=1, max_value=50),
                st.decimals(min_value="0.001", max_value="20", places=3),
            ),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_breakdown_properties(items: list[tuple[int, Decimal, Decimal | int]]) -> None:
    lines = [InvoiceLine("x", qty, unit, rate) for unit, rate, qty in items]
    totals = compute_totals(lines)
    assert totals.net + totals.tax == totals.gross == sum(ln.gross for ln in lines)
    assert sum(v.gross for v in totals.vat) == totals.gross
    for vat in totals.vat:
        group = [c for c in totals.lines if c.line.tax_rate == vat.rate]
        assert vat.net + vat.tax == vat.gross
        assert sum(c.net for c in group) == vat.net  # EN 16931 BR-S-08
        assert sum(c.tax for c in group) == vat.tax
        assert vat.net == round_minor(Decimal(vat.gross) * 100 / (100 + vat.rate))
        # within one minor unit of net x rate (EN 16931 BR-CO-17 tolerance)
        assert abs(vat.tax - round_minor(vat.net * vat.rate / 100)) <= 1
    for computed in totals.lines:
        assert 0 <= computed.net <= computed.gross
        assert computed.net + computed.tax == computed.gross


def test_credit_note_needs_the_invoice_it_corrects(make_document) -> None:
    with pytest.raises(InvalidRequest):
        make_document(kind="credit_note")
    note = make_document(kind="credit_note", related_invoice_number="F-2026-000041")
    assert note.totals.gross > 0  # credit notes keep positive amounts


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"lines": ()}, "lines"),
        ({"kind": "quote"}, "kind"),
        ({"language": "de"}, "language"),
        ({"number": " "}, "number"),
        ({"currency": "euro"}, "currency"),
    ],
)
def test_document_validation(make_document, kwargs, param) -> None:
    with pytest.raises(InvalidRequest) as info:
        make_document(**kwargs)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("quantity", "unit", "rate"),
    [(0, 100, "20"), (1, -1, "20"), (1, 100, "100"), (1, 100, "-1")],
)
def test_line_validation(quantity, unit, rate) -> None:
    with pytest.raises(InvalidRequest):
        InvoiceLine("x", quantity, unit, Decimal(rate))


def test_line_refuses_float_like_amounts() -> None:
    with pytest.raises(InvalidRequest):
        InvoiceLine("x", 1, 12.5, Decimal(20))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        InvoiceLine("x", 1, True, Decimal(20))


def test_party_normalizes_country() -> None:
    assert Party("A", ("x",), "1", "c", "fr").country == "FR"
    with pytest.raises(InvalidRequest):
        Party("A", ("x",), "1", "c", "FRA")


def test_formatting() -> None:
    assert format_money(123_456, "eur", "fr") == "1 234,56 €"
    assert format_money(123_456, "eur", "en") == "€1,234.56"
    assert format_money(Decimal("333.3333"), "eur", "fr") == "3,3333 €"
    assert format_money(Decimal("11223.5"), "eur", "en") == "€112.235"
    assert format_money(1_000, "kwd", "en") == "1.000 KWD"
    assert format_rate(Decimal("5.5"), "fr") == "5,5 %"
    assert format_rate(Decimal("20.00"), "en") == "20%"
    assert format_date(dt.date(2026, 1, 31), "fr") == "31/01/2026"
    assert format_date(dt.date(2026, 1, 31), "en") == "2026-01-31"
