"""Factur-X: the EN 16931 CII XML of a document, embedded into its PDF (PDF/A-3).

Live documents are issued as Factur-X (profile EN 16931, the "Comfort" level) so that the
buyer's accounting software can read them; test documents need not be. The XML follows the
order of the Factur-X 1.0.7+ XSD shipped with the ``factur-x`` library, against which every
document is checked before it is issued. Type code 380 is an invoice and 381 a credit note,
whose amounts stay positive (EN 16931 BR-CO-… rules read the sign from the type code).

These invoices are issued once paid, so the whole amount is reported as prepaid and nothing is
due (BT-113 = BT-112, BT-115 = 0); the payment date goes into the payment terms note.

Embedding: the renderer writes the PDF/A-3 with the XML attached in one pass
(``render.FacturXPart``, ``caisse.invoices.pdf``), with the same attachment structure and XMP
extension schema as ``facturx.generate_from_binary``, which would read and rewrite the whole
PDF with pypdf (most of an invoice's issuing time). The tests read the result back with the
library (``get_xml_from_pdf``). The XSD check keeps the library's schema files but compiles
them once per process instead of at every call.
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from decimal import Decimal

import facturx.facturx as _fxlib
from lxml import etree  # type: ignore[import-untyped]

from caisse.errors import InvalidRequest
from caisse.invoices.document import InvoiceDocument, Party
from caisse.money import exponent, to_decimal

__all__ = ["XMP", "FacturXInvalid", "build_cii_xml", "checked_xml", "validate"]

LEVEL = "en16931"
GUIDELINE = "urn:cen.eu:en16931:2017"

_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}

# UNTDID 4461 payment means; Stripe and Xsolla payments are mostly cards.
_PAYMENT_MEANS = {
    "card": "48",  # bank card
    "sepa_debit": "59",  # SEPA direct debit
    "bank_transfer": "58",  # SEPA credit transfer
    "paypal": "68",  # online payment service
    "cash": "10",
}
_TYPE_CODES = {"invoice": "380", "credit_note": "381"}
_ISO6523_SIRENE = "0002"  # ICD scheme of SIREN/SIRET identifiers (BT-30 scheme)


class FacturXInvalid(InvalidRequest):
    """The XML does not pass the Factur-X XSD: a seller or buyer field is missing or malformed."""

    code = "facturx_invalid"


_QNAMES: dict[str, str] = {}


def _qname(tag: str) -> str:
    qname = _QNAMES.get(tag)
    if qname is None:
        prefix, name = tag.split(":")
        qname = _QNAMES[tag] = f"{{{_NS[prefix]}}}{name}"
    return qname


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    element = etree.SubElement(parent, _qname(tag), attrib)
    if text is not None:
        try:
            element.text = text
        except ValueError as exc:  # a control character, which XML cannot carry
            raise FacturXInvalid(f"Factur-X XML is not valid: {tag}: {exc}") from exc
    return element


def _date(parent: etree._Element, tag: str, value: str) -> None:
    _el(_el(parent, tag), "udt:DateTimeString", value, format="102")


def _percent(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def _party(parent: etree._Element, tag: str, party: Party) -> None:
    node = _el(parent, tag)
    _el(node, "ram:Name", party.legal_name)
    if party.registration_number:
        legal = _el(node, "ram:SpecifiedLegalOrganization")
        digits = party.registration_number.replace(" ", "")
        if party.country == "FR" and digits.isdigit() and len(digits) in (9, 14):
            _el(legal, "ram:ID", digits, schemeID=_ISO6523_SIRENE)
        else:
            _el(legal, "ram:ID", party.registration_number)
    address = _el(node, "ram:PostalTradeAddress")
    _el(address, "ram:PostcodeCode", party.postcode)
    for tag_name, line in zip(
        ("ram:LineOne", "ram:LineTwo", "ram:LineThree"), party.address_lines, strict=False
    ):
        _el(address, tag_name, line)
    _el(address, "ram:CityName", party.city)
    _el(address, "ram:CountryID", party.country)
    if party.email:
        uri = _el(node, "ram:URIUniversalCommunication")
        _el(uri, "ram:URIID", party.email, schemeID="EM")
    if party.vat_number:
        tax = _el(node, "ram:SpecifiedTaxRegistration")
        _el(tax, "ram:ID", party.vat_number.replace(" ", ""), schemeID="VA")


def build_cii_xml(doc: InvoiceDocument) -> bytes:
    """The document as a Factur-X EN 16931 CrossIndustryInvoice, UTF-8 bytes."""
    cur = doc.currency
    upper = cur.upper()

    def amount(minor: int) -> str:
        return str(to_decimal(minor, cur))

    root = etree.Element(_qname("rsm:CrossIndustryInvoice"), nsmap=_NS)
    context = _el(root, "rsm:ExchangedDocumentContext")
    if doc.test_mode:
        # BT-23 business process: lets a receiving system spot a test document.
        _el(_el(context, "ram:BusinessProcessSpecifiedDocumentContextParameter"), "ram:ID", "TEST")
    _el(_el(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", GUIDELINE)

    header = _el(root, "rsm:ExchangedDocument")
    _el(header, "ram:ID", doc.number)
    _el(header, "ram:TypeCode", _TYPE_CODES[doc.kind])
    _date(header, "ram:IssueDateTime", doc.issue_date.strftime("%Y%m%d"))
    for subject, text in _notes(doc):
        note = _el(header, "ram:IncludedNote")
        _el(note, "ram:Content", text)
        _el(note, "ram:SubjectCode", subject)

    transaction = _el(root, "rsm:SupplyChainTradeTransaction")
    for index, line in enumerate(doc.totals.lines, start=1):
        item = _el(transaction, "ram:IncludedSupplyChainTradeLineItem")
        _el(_el(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", str(index))
        _el(_el(item, "ram:SpecifiedTradeProduct"), "ram:Name", line.line.description)
        agreement = _el(item, "ram:SpecifiedLineTradeAgreement")
        price = _el(agreement, "ram:NetPriceProductTradePrice")
        unit_price = line.unit_net.scaleb(-exponent(cur)).normalize()
        _el(price, "ram:ChargeAmount", format(unit_price, "f"))
        delivery = _el(item, "ram:SpecifiedLineTradeDelivery")
        quantity = format(Decimal(line.line.quantity).normalize(), "f")
        _el(delivery, "ram:BilledQuantity", quantity, unitCode="C62")  # C62: one (unit)
        settlement = _el(item, "ram:SpecifiedLineTradeSettlement")
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:TypeCode", "VAT")
        _el(tax, "ram:CategoryCode", _category_of(doc, line.line.tax_rate))
        _el(tax, "ram:RateApplicablePercent", _percent(line.line.tax_rate))
        summation = _el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
        _el(summation, "ram:LineTotalAmount", amount(line.net))

    agreement = _el(transaction, "ram:ApplicableHeaderTradeAgreement")
    _party(agreement, "ram:SellerTradeParty", doc.seller)
    _party(agreement, "ram:BuyerTradeParty", doc.buyer)
    order = _el(agreement, "ram:SellerOrderReferencedDocument")
    _el(order, "ram:IssuerAssignedID", doc.order_reference)

    _el(transaction, "ram:ApplicableHeaderTradeDelivery")

    settlement = _el(transaction, "ram:ApplicableHeaderTradeSettlement")
    _el(settlement, "ram:InvoiceCurrencyCode", upper)
    means = _el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
    _el(means, "ram:TypeCode", _PAYMENT_MEANS.get(doc.payment_method, "ZZZ"))
    _el(means, "ram:Information", doc.payment_method)
    for vat in doc.totals.vat:
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:CalculatedAmount", amount(vat.tax))
        _el(tax, "ram:TypeCode", "VAT")
        if vat.category == "E" and doc.vat_exemption_reason:
            _el(tax, "ram:ExemptionReason", doc.vat_exemption_reason)
        _el(tax, "ram:BasisAmount", amount(vat.net))
        _el(tax, "ram:CategoryCode", vat.category)
        _el(tax, "ram:RateApplicablePercent", _percent(vat.rate))
    terms = _el(settlement, "ram:SpecifiedTradePaymentTerms")
    verb = "Refunded" if doc.kind == "credit_note" else "Paid"
    _el(terms, "ram:Description", f"{verb} on {doc.payment_date.isoformat()}")
    totals = _el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _el(totals, "ram:LineTotalAmount", amount(doc.totals.net))
    _el(totals, "ram:TaxBasisTotalAmount", amount(doc.totals.net))
    _el(totals, "ram:TaxTotalAmount", amount(doc.totals.tax), currencyID=upper)
    _el(totals, "ram:GrandTotalAmount", amount(doc.totals.gross))
    _el(totals, "ram:TotalPrepaidAmount", amount(doc.totals.gross))
    _el(totals, "ram:DuePayableAmount", amount(0))
    if doc.related_invoice_number:
        related = _el(settlement, "ram:InvoiceReferencedDocument")
        _el(related, "ram:IssuerAssignedID", doc.related_invoice_number)

    xml: bytes = etree.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml


def _category_of(doc: InvoiceDocument, rate: Decimal) -> str:
    for vat in doc.totals.vat:
        if vat.rate == rate:
            return vat.category
    raise AssertionError("every line rate has a breakdown")  # pragma: no cover


def _notes(doc: InvoiceDocument) -> list[tuple[str, str]]:
    """Free-text notes; between businesses, a French seller's payment mentions with their
    UNTDID 4451 subjects."""
    notes: list[tuple[str, str]] = []
    if doc.b2b_mentions:
        notes += [
            ("PMD", "Pénalités de retard : trois fois le taux d'intérêt légal."),
            ("PMT", "Indemnité forfaitaire pour frais de recouvrement de 40 €."),
            ("AAB", "Escompte pour paiement anticipé : néant."),
        ]
    if doc.vat_exemption_reason:
        notes.append(("AAI", doc.vat_exemption_reason))
    return notes


_SCHEMA_LOCK = threading.Lock()


@functools.cache
def _schema() -> etree.XMLSchema:
    """The library's EN 16931 XSD, compiled once (the library compiles it at every call)."""
    path = _fxlib.FACTURX_LEVEL2xsd[LEVEL]
    xsd = importlib.resources.files("facturx") / "xsd_and_schematron" / path
    return etree.XMLSchema(file=str(xsd))


def validate(xml: bytes) -> None:
    """Check the XML against the Factur-X EN 16931 XSD; raise ``FacturXInvalid`` otherwise."""
    with _SCHEMA_LOCK:  # an lxml schema object is not meant to be shared between threads
        schema = _schema()
        try:
            tree = etree.fromstring(xml)
        except etree.XMLSyntaxError as exc:
            raise FacturXInvalid(f"Factur-X XML is not valid: {exc}") from exc
        if not schema.validate(tree):
            raise FacturXInvalid(f"Factur-X XML is not valid: {schema.error_log.last_error}")


def checked_xml(doc: InvoiceDocument) -> bytes:
    """The document's CII XML, checked against the XSD (raises ``FacturXInvalid``)."""
    xml = build_cii_xml(doc)
    validate(xml)
    return xml


# The XMP of a Factur-X PDF/A-3 (Factur-X 1.0 spec, section 6.2.2): the PDF/A extension schema
# declaring the fx: properties, then their values, as ``facturx.generate_xmp_bytes`` writes them.
_FX_URN = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
_FX_PROPERTIES = (
    ("DocumentFileName", "The name of the embedded XML document"),
    ("DocumentType", "The type of the hybrid document in capital letters, e.g. INVOICE or ORDER"),
    ("Version", "The actual version of the standard applying to the embedded XML document"),
    ("ConformanceLevel", "The conformance level of the embedded XML document"),
)
XMP = (
    """
    <rdf:Description rdf:about=""
        xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/"
        xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#"
        xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">
      <pdfaExtension:schemas>
        <rdf:Bag>
          <rdf:li rdf:parseType="Resource">
            <pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>
            <pdfaSchema:namespaceURI>"""
    + _FX_URN
    + """</pdfaSchema:namespaceURI>
            <pdfaSchema:prefix>fx</pdfaSchema:prefix>
            <pdfaSchema:property>
              <rdf:Seq>"""
    + "".join(
        f"""
                <rdf:li rdf:parseType="Resource">
                  <pdfaProperty:name>{name}</pdfaProperty:name>
                  <pdfaProperty:valueType>Text</pdfaProperty:valueType>
                  <pdfaProperty:category>external</pdfaProperty:category>
                  <pdfaProperty:description>{text}</pdfaProperty:description>
                </rdf:li>"""
        for name, text in _FX_PROPERTIES
    )
    + """
              </rdf:Seq>
            </pdfaSchema:property>
          </rdf:li>
        </rdf:Bag>
      </pdfaExtension:schemas>
    </rdf:Description>
    <rdf:Description rdf:about="" xmlns:fx='"""
    + _FX_URN
    + f"""'>
      <fx:DocumentType>INVOICE</fx:DocumentType>
      <fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>
      <fx:Version>1.0</fx:Version>
      <fx:ConformanceLevel>{_fxlib.FACTURX_LEVEL2xmp[LEVEL]}</fx:ConformanceLevel>
    </rdf:Description>"""
)
