"""The PDF, read back with pypdf: content, French mentions, TEST mark, determinism."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from caisse.invoices import render
from caisse.invoices.render import render_pdf


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def test_invoice_content(make_document) -> None:
    doc = make_document()
    text = "\n".join(pages_text(render_pdf(doc)))
    assert "FACTURE" in text
    assert "F-2026-000042" in text
    assert "Date d'émission : 31/01/2026" in text
    assert "Référence de commande : ord_7Hq2" in text
    assert "Appart Compta SAS" in text
    assert "Jeanne Dupont" in text
    assert "Nuitée chambre double" in text
    # totals: 22 000 @10 % + 2 400 @5.5 % + 2 400 @20 %
    assert "Total TTC 268,00 €" in text
    assert "Total HT 242,75 €" in text
    assert "Total TVA 25,25 €" in text
    # VAT breakdown lines: rate, base, tax, gross
    assert "10 % 200,00 € 20,00 € 220,00 €" in text
    assert "5,5 % 22,75 € 1,25 € 24,00 €" in text
    assert "20 % 20,00 € 4,00 € 24,00 €" in text
    assert "Acquittée le 30/01/2026 par carte bancaire." in text
    assert "Page 1/1" in text


def test_french_mandatory_mentions(make_document, business_buyer) -> None:
    from dataclasses import replace

    seller = replace(
        make_document().seller,
        legal_form="SAS",
        share_capital="10 000 €",
        rcs="RCS Paris 123 456 789",
    )
    text = "\n".join(pages_text(render_pdf(make_document(seller=seller, buyer=business_buyer))))
    assert "SAS au capital de 10 000 €" in text
    assert "RCS Paris 123 456 789" in text
    assert "SIREN : 123456789" in text
    assert "N° TVA intracommunautaire : FR40123456789" in text
    assert "Pénalités de retard" in text
    assert "Indemnité forfaitaire pour frais de recouvrement de 40 €" in text
    assert "Escompte pour paiement anticipé : néant." in text
    assert "RCS Paris" in text  # the seller's footer


def test_b2b_mentions_are_left_out_for_a_consumer(make_document) -> None:
    text = "\n".join(pages_text(render_pdf(make_document())))
    assert "SIREN : 123456789" in text
    assert "Pénalités de retard" not in text
    assert "40 €" not in text
    assert "Escompte" not in text


def test_no_french_mentions_for_a_foreign_seller(make_document, seller_de) -> None:
    text = "\n".join(pages_text(render_pdf(make_document(seller=seller_de, language="en"))))
    assert "INVOICE" in text
    assert "Total incl. VAT €268.00" in text
    assert "Paid on 2026-01-30 by card." in text
    assert "VAT number : DE123456789" in text
    assert "Pénalités" not in text
    assert "40 €" not in text


def test_siret_and_exemption_reason(make_document) -> None:
    from dataclasses import replace

    doc = make_document()
    seller = replace(doc.seller, registration_number="12345678900012")
    reason = "TVA non applicable, art. 293 B du CGI"
    text = "\n".join(
        pages_text(render_pdf(make_document(seller=seller, vat_exemption_reason=reason)))
    )
    assert "SIRET : 12345678900012" in text
    assert reason in text


def test_credit_note(make_document) -> None:
    doc = make_document(kind="credit_note", number="A-2026-0003", related_invoice_number="F-1")
    text = "\n".join(pages_text(render_pdf(doc)))
    assert "AVOIR" in text
    assert "Avoir sur la facture : F-1" in text
    assert "Total TTC remboursé 268,00 €" in text
    assert "Remboursement effectué le 30/01/2026" in text


def test_test_mode_marks_every_page_of_a_long_invoice(make_document) -> None:
    pages = pages_text(render_pdf(make_document(test_mode=True, line_count=80)))
    assert len(pages) >= 3
    for text in pages:
        assert "TEST" in text
    assert "Article n°79 — été" in pages[-1] or "Article n°79 — été" in "".join(pages)


def test_live_mode_has_no_test_mark(make_document) -> None:
    pages = pages_text(render_pdf(make_document(test_mode=False, line_count=80)))
    assert len(pages) >= 3
    for text in pages:
        assert "TEST" not in text
    assert f"Page {len(pages)}/{len(pages)}" in pages[-1]


def test_same_document_same_bytes(make_document) -> None:
    doc = make_document(test_mode=True, line_count=12)
    assert render_pdf(doc) == render_pdf(make_document(test_mode=True, line_count=12))
    assert render_pdf(doc) != render_pdf(make_document(test_mode=True, line_count=12, number="X"))


def test_unicode_font_embedded_as_pdfa(make_document) -> None:
    if render._find_fonts() is None:
        pytest.skip("no DejaVu font on this machine")
    pdf = render_pdf(make_document())
    assert b"/OutputIntents" in pdf
    reader = PdfReader(io.BytesIO(pdf))
    fonts = {
        str(font.get_object()["/BaseFont"])
        for page in reader.pages
        for font in page["/Resources"]["/Font"].values()
    }
    assert any("DejaVu" in name for name in fonts)
    xmp = reader.xmp_metadata
    assert xmp is not None
    # dated by the document, never by the clock, so re-rendering gives the same bytes
    assert xmp.xmp_modify_date == xmp.xmp_create_date
    assert xmp.xmp_create_date.date().isoformat() == "2026-01-31"


def test_core_font_fallback_keeps_accents(make_document, monkeypatch) -> None:
    monkeypatch.setattr(render, "_find_fonts", lambda: None)
    text = "\n".join(pages_text(render_pdf(make_document(test_mode=True))))
    assert "Désignation" in text
    assert "268,00 EUR" in text
    assert "TEST" in text


def test_logo(make_document) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (60, 20), (10, 80, 160)).save(buffer, format="PNG")
    pdf = render_pdf(make_document(), logo=buffer.getvalue())
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    assert len(page.images) == 1
