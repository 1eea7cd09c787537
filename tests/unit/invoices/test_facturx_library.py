"""Our one-pass Factur-X writer, seen through the ``factur-x`` library.

caisse writes the PDF/A-3 and its attachment itself instead of calling
``facturx.generate_from_binary`` (which re-reads and rewrites the whole PDF with pypdf, ~4x the
time of drawing the invoice; see docs/invoices.md). These tests hold the deviation to account:
the library finds, reads and checks our files exactly as it reads its own, and the EN 16931
terms it parses out of the XML are the document's.
"""

from __future__ import annotations

import io
from decimal import Decimal

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from caisse.invoices.facturx import XMP, checked_xml
from caisse.invoices.render import FacturXPart, render_pdf

FX = {"fx": "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"}


def ours(doc) -> bytes:
    return render_pdf(doc, facturx=FacturXPart(checked_xml(doc), XMP))


def library(doc) -> bytes:
    """The same invoice, with the XML attached by the library itself."""
    return bytes(
        facturx.generate_from_binary(
            render_pdf(doc),
            checked_xml(doc),
            flavor="factur-x",
            level="en16931",
            check_xsd=True,
            xmp_compression=False,
        )
    )


def structure(pdf: bytes) -> dict[str, object]:
    """What a Factur-X reader looks at: the associated file and the XMP fx: properties."""
    reader = PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    (spec,) = [ref.get_object() for ref in root["/AF"]]
    embedded = spec["/EF"]["/F"].get_object()
    metadata = reader.xmp_metadata
    assert metadata is not None
    xmp = etree.fromstring(metadata.stream.get_data())
    return {
        "names": list(root["/Names"]["/EmbeddedFiles"]["/Names"][::2]),
        "relationship": spec["/AFRelationship"],
        "filename": (spec["/F"], spec["/UF"]),
        "subtype": embedded["/Subtype"],
        "size": embedded["/Params"]["/Size"],
        "fx": {
            name: xmp.findtext(f".//fx:{name}", namespaces=FX)
            for name in ("DocumentType", "DocumentFileName", "Version", "ConformanceLevel")
        },
        "pdfa": b"<pdfaid:part>3</pdfaid:part>" in metadata.stream.get_data(),
    }


@pytest.mark.parametrize("kind", ["invoice", "credit_note"])
def test_the_library_reads_our_file_as_it_reads_its_own(make_document, business_buyer, kind):
    extra = {"related_invoice_number": "F2026-000041"} if kind == "credit_note" else {}
    doc = make_document(kind=kind, buyer=business_buyer, **extra)
    mine, theirs = ours(doc), library(doc)
    assert structure(mine) == structure(theirs)
    for pdf in (mine, theirs):
        filename, xml = facturx.get_facturx_xml_from_pdf(pdf, check_xsd=True)
        assert filename == "factur-x.xml"
        assert xml == checked_xml(doc)
        tree = etree.fromstring(xml)
        assert facturx.get_flavor(tree) == "factur-x"
        assert facturx.get_level(tree) == "en16931"


def test_the_terms_the_library_parses_are_the_documents(make_document, business_buyer):
    doc = make_document(kind="credit_note", related_invoice_number="F-1", buyer=business_buyer)
    _, xml = facturx.get_facturx_xml_from_pdf(ours(doc), check_xsd=True)
    data = facturx.parse_ubl_cii_xml(xml, check_xsd=True)
    assert facturx.is_credit_note(data)
    totals = doc.totals
    assert data["BT-1"] == doc.number
    assert data["BT-2"] == doc.issue_date
    assert data["BT-5"] == "EUR"
    assert Decimal(data["BT-109"]) * 100 == totals.net
    assert Decimal(data["BT-110"]) * 100 == totals.tax
    assert Decimal(data["BT-112"]) * 100 == totals.gross
    assert Decimal(data["BT-115"]) == 0  # paid (refunded) already: nothing due
    assert data["BG-4"]["vat_identifier"] == doc.seller.vat_number
    assert data["BG-4"]["legal_identifier_schemeid"] == "0002"  # SIREN/SIRET scheme
    assert data["BG-7"]["name"] == doc.buyer.legal_name
    assert len(data["BG-25"]) == len(doc.lines)
