"""Factur-X: the CII XML is valid EN 16931 (XSD), consistent with the totals, and survives a
round trip through the PDF."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import replace
from decimal import Decimal

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from caisse.invoices.document import InvoiceLine
from caisse.invoices.facturx import XMP, FacturXInvalid, build_cii_xml, checked_xml, validate
from caisse.invoices.render import FacturXPart, render_pdf

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}


def find(root: ET.Element, path: str) -> str:
    node = root.find(path, NS)
    assert node is not None, path
    return node.text or ""


def test_invoice_xml_is_valid_and_matches_totals(make_document, business_buyer) -> None:
    doc = make_document(line_count=40, buyer=business_buyer)
    xml = build_cii_xml(doc)
    validate(xml)
    assert facturx.get_level(etree.fromstring(xml), "factur-x") == "en16931"
    root = ET.fromstring(xml)
    assert find(root, "rsm:ExchangedDocument/ram:TypeCode") == "380"
    assert find(root, "rsm:ExchangedDocument/ram:ID") == doc.number
    assert find(root, ".//udt:DateTimeString") == "20260131"
    summary = ".//ram:SpecifiedTradeSettlementHeaderMonetarySummation/ram:"
    totals = doc.totals
    assert Decimal(find(root, summary + "LineTotalAmount")) * 100 == totals.net
    assert Decimal(find(root, summary + "TaxTotalAmount")) * 100 == totals.tax
    assert Decimal(find(root, summary + "GrandTotalAmount")) * 100 == totals.gross
    assert Decimal(find(root, summary + "DuePayableAmount")) == 0
    line_sum = sum(
        Decimal(node.text or "")
        for node in root.iterfind(".//ram:SpecifiedLineTradeSettlement//ram:LineTotalAmount", NS)
    )
    assert line_sum * 100 == totals.net  # BR-CO-10
    breakdown = {
        (find(tax, "ram:CategoryCode"), find(tax, "ram:RateApplicablePercent")): (
            Decimal(find(tax, "ram:BasisAmount")),
            Decimal(find(tax, "ram:CalculatedAmount")),
        )
        for tax in root.iterfind(
            ".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", NS
        )
    }
    assert set(breakdown) == {("S", "20"), ("S", "10"), ("S", "5.5"), ("Z", "0")}
    seller = ".//ram:SellerTradeParty/"
    assert find(root, seller + "ram:SpecifiedTaxRegistration/ram:ID") == "FR40123456789"
    assert find(root, seller + "ram:SpecifiedLegalOrganization/ram:ID") == "123456789"
    assert find(root, ".//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == "48"
    notes = {find(n, "ram:SubjectCode") for n in root.iterfind(".//ram:IncludedNote", NS)}
    assert notes == {"PMD", "PMT", "AAB"}


def test_consumer_invoice_has_no_b2b_notes(make_document) -> None:
    root = ET.fromstring(build_cii_xml(make_document()))
    assert root.findall(".//ram:IncludedNote", NS) == []


def test_credit_note_xml(make_document) -> None:
    doc = make_document(kind="credit_note", number="A-7", related_invoice_number="F-2026-000041")
    xml = build_cii_xml(doc)
    validate(xml)
    root = ET.fromstring(xml)
    assert find(root, "rsm:ExchangedDocument/ram:TypeCode") == "381"
    assert find(root, ".//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == "F-2026-000041"
    assert Decimal(find(root, ".//ram:GrandTotalAmount")) > 0


def test_exempt_zero_rate_and_jpy(make_document) -> None:
    reason = "TVA non applicable, art. 293 B du CGI"
    doc = make_document(
        currency="jpy",
        lines=(InvoiceLine("Game pack", 3, 1_100, Decimal(0)),),
        vat_exemption_reason=reason,
        payment_method="wechat",
    )
    xml = build_cii_xml(doc)
    validate(xml)
    root = ET.fromstring(xml)
    tax = root.find(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", NS)
    assert tax is not None
    assert find(tax, "ram:CategoryCode") == "E"
    assert find(tax, "ram:ExemptionReason") == reason
    assert find(root, ".//ram:GrandTotalAmount") == "3300"
    assert find(root, ".//ram:InvoiceCurrencyCode") == "JPY"
    assert find(root, ".//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == "ZZZ"


def test_embedded_xml_round_trips_through_the_pdf(make_document) -> None:
    doc = make_document()
    xml = checked_xml(doc)
    pdf = render_pdf(doc, facturx=FacturXPart(xml, XMP))
    # The factur-x library finds, extracts and checks it as it would any Factur-X PDF.
    filename, extracted = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    assert extracted == xml
    assert facturx.get_facturx_xml_from_pdf(pdf, check_xsd=True)[1] == xml
    reader = PdfReader(io.BytesIO(pdf))
    assert "F-2026-000042" in reader.pages[0].extract_text()
    # PDF/A-3 associated file, as the library's generate_from_binary writes it
    root = reader.trailer["/Root"]
    (spec,) = [ref.get_object() for ref in root["/AF"]]
    assert spec["/AFRelationship"] == "/Data"
    assert spec["/F"] == spec["/UF"] == "factur-x.xml"
    embedded = spec["/EF"]["/F"].get_object()
    assert embedded["/Subtype"] == "/text/xml"
    assert embedded["/Params"]["/Size"] == len(xml)
    assert root["/Names"]["/EmbeddedFiles"]["/Names"][0] == "factur-x.xml"
    metadata = reader.xmp_metadata
    assert metadata is not None
    xmp = metadata.stream.get_data()
    assert b"<pdfaid:part>3</pdfaid:part>" in xmp
    fx = etree.fromstring(xmp)
    ns = {"fx": "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"}
    assert fx.findtext(".//fx:DocumentFileName", namespaces=ns) == "factur-x.xml"
    assert fx.findtext(".//fx:ConformanceLevel", namespaces=ns) == "EN 16931"
    assert fx.findtext(".//fx:DocumentType", namespaces=ns) == "INVOICE"
    # same document, same bytes: nothing stamps the clock into the file
    assert render_pdf(doc, facturx=FacturXPart(xml, XMP)) == pdf


def test_test_documents_and_plain_renders_have_no_attachment(make_document) -> None:
    reader = PdfReader(io.BytesIO(render_pdf(make_document())))
    assert "/AF" not in reader.trailer["/Root"]
    assert reader.attachments == {}


def test_validate_rejects_invalid_xml(make_document) -> None:
    xml = build_cii_xml(make_document())
    broken = xml.replace(b"<ram:TypeCode>380</ram:TypeCode>", b"")
    with pytest.raises(FacturXInvalid):
        validate(broken)
    with pytest.raises(FacturXInvalid):
        validate(b"not xml")
    # a control character from a customer record makes the XML itself unreadable
    buyer = replace(make_document().buyer, legal_name="Jeanne\x0bDupont")
    with pytest.raises(FacturXInvalid):
        checked_xml(make_document(buyer=buyer))
