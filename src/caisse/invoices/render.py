"""Draw an ``InvoiceDocument`` as a PDF with fpdf2.

Policies this module owns:

* **TEST mark.** A document of the test environment carries a large diagonal "TEST" and a banner
  on every page (drawn from ``header()``, which fpdf2 calls for each new page, including the
  ones a long lines table breaks onto); a live document carries none of it.
* **Determinism.** The same document gives the same bytes: the PDF creation date is the issue
  date (midnight UTC) and fpdf2 derives the file /ID from the content, so a stored hash can be
  checked by rendering again with the same fonts and fpdf2 version.
* **Fonts.** DejaVu Sans (TrueType, full Unicode, embedded and subset) is looked up in the usual
  system font folders; the PDF is then PDF/A-3B, ready for Factur-X. Without it the renderer
  falls back to the core Helvetica font: text is transliterated to Latin-1 ("€" becomes "EUR")
  and the output is not PDF/A.
* **French mentions.** When the seller is in France the PDF prints SIREN/SIRET, the VAT number,
  late-payment penalties, the 40 € recovery indemnity (Code de commerce L441-10 and D441-5), the
  early-payment discount and the payment date ("Acquittée le …").
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

from fpdf import FPDF, FontFace

from caisse.invoices import fonts as _fonts
from caisse.invoices.document import (
    InvoiceDocument,
    Language,
    Party,
    format_date,
    format_money,
    format_rate,
)

__all__ = ["render_pdf"]

_FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu",
    "/usr/share/fonts/TTF",
    "/usr/share/fonts/truetype",
    "/usr/local/share/fonts",
    "/Library/Fonts",
)
_FAMILY = "caisse"
_MARGIN = 15.0

_LABELS: dict[Language, dict[str, str]] = {
    "fr": {
        "invoice": "FACTURE",
        "credit_note": "AVOIR",
        "number": "N°",
        "issue_date": "Date d'émission",
        "payment_date": "Date de paiement",
        "refund_date": "Date de remboursement",
        "order_reference": "Référence de commande",
        "related_invoice": "Avoir sur la facture",
        "seller": "Vendeur",
        "buyer": "Client",
        "vat_number": "N° TVA intracommunautaire",
        "registration": "N° d'immatriculation",
        "description": "Désignation",
        "quantity": "Qté",
        "unit_net": "P.U. HT",
        "rate": "TVA",
        "net": "Total HT",
        "tax": "Montant TVA",
        "gross": "Total TTC",
        "vat_breakdown": "Récapitulatif TVA",
        "base": "Base HT",
        "total_net": "Total HT",
        "total_tax": "Total TVA",
        "total_gross": "Total TTC",
        "total_credit": "Total TTC remboursé",
        "paid": "Acquittée le {date} par {method}.",
        "refunded": "Remboursement effectué le {date} par {method}.",
        "page": "Page {page}/{{nb}}",
        "test_banner": "TEST — document de l'environnement de test, sans valeur comptable",
        "penalties": (
            "Pénalités de retard : trois fois le taux d'intérêt légal "
            "(art. L441-10 du Code de commerce)."
        ),
        "indemnity": (
            "Indemnité forfaitaire pour frais de recouvrement de 40 € "
            "(art. D441-5 du Code de commerce)."
        ),
        "discount": "Escompte pour paiement anticipé : néant.",
    },
    "en": {
        "invoice": "INVOICE",
        "credit_note": "CREDIT NOTE",
        "number": "No.",
        "issue_date": "Issue date",
        "payment_date": "Payment date",
        "refund_date": "Refund date",
        "order_reference": "Order reference",
        "related_invoice": "Credit note for invoice",
        "seller": "Seller",
        "buyer": "Bill to",
        "vat_number": "VAT number",
        "registration": "Registration number",
        "description": "Description",
        "quantity": "Qty",
        "unit_net": "Unit price (excl. VAT)",
        "rate": "VAT",
        "net": "Net",
        "tax": "VAT amount",
        "gross": "Total incl. VAT",
        "vat_breakdown": "VAT breakdown",
        "base": "Taxable amount",
        "total_net": "Total excl. VAT",
        "total_tax": "Total VAT",
        "total_gross": "Total incl. VAT",
        "total_credit": "Total refunded incl. VAT",
        "paid": "Paid on {date} by {method}.",
        "refunded": "Refunded on {date} by {method}.",
        "page": "Page {page}/{{nb}}",
        "test_banner": "TEST — test environment document, not a valid invoice",
        "penalties": (
            "Late payment penalties: three times the French legal interest rate "
            "(art. L441-10 Code de commerce)."
        ),
        "indemnity": (
            "Fixed compensation for recovery costs: 40 € (art. D441-5 Code de commerce)."
        ),
        "discount": "No discount for early payment.",
    },
}

_METHODS: dict[Language, dict[str, str]] = {
    "fr": {
        "card": "carte bancaire",
        "sepa_debit": "prélèvement SEPA",
        "bank_transfer": "virement bancaire",
        "paypal": "PayPal",
        "cash": "espèces",
    },
    "en": {
        "card": "card",
        "sepa_debit": "SEPA direct debit",
        "bank_transfer": "bank transfer",
        "paypal": "PayPal",
        "cash": "cash",
    },
}


def payment_method_label(method: str, language: Language) -> str:
    """Human label of a payment method code; unknown codes are printed as given."""
    return _METHODS[language].get(method, method)


@dataclass(frozen=True, slots=True)
class _Fonts:
    regular: Path
    bold: Path


@functools.cache
def _find_fonts() -> _Fonts | None:
    """DejaVu Sans regular and bold from the first system folder that has both."""
    for folder in _FONT_DIRS:
        regular, bold = Path(folder, "DejaVuSans.ttf"), Path(folder, "DejaVuSans-Bold.ttf")
        if regular.is_file() and bold.is_file():
            return _Fonts(regular, bold)
    return None


def _latin1(text: str) -> str:
    """Make text printable with a core PDF font: the fallback when no Unicode font exists."""
    text = text.replace("€", "EUR").replace("—", "-").replace("’", "'").replace("\u202f", " ")
    out = []
    for char in text:
        if ord(char) < 256:
            out.append(char)
        else:
            ascii_form = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
            out.append(ascii_form or "?")
    return "".join(out)


class _InvoicePDF(FPDF):
    """fpdf2 document with the TEST mark in every page header and numbered footers."""

    def __init__(self, doc: InvoiceDocument, fonts: _Fonts | None) -> None:
        super().__init__(
            orientation="P",
            unit="mm",
            format="A4",
            enforce_compliance="PDFA_3B" if fonts else None,
        )
        self.invoice = doc
        self.has_unicode = fonts is not None
        if fonts:
            # Parsed once per process, forked per document (see caisse.invoices.fonts).
            _fonts.install(self, _FAMILY, "", fonts.regular)
            _fonts.install(self, _FAMILY, "B", fonts.bold)
            self.base_family = _FAMILY
        else:
            self.base_family = "helvetica"
        self.labels = _LABELS[doc.language]
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(auto=True, margin=25)
        self.alias_nb_pages()

    def txt(self, text: str) -> str:
        return text if self.has_unicode else _latin1(text)

    def header(self) -> None:
        if not self.invoice.test_mode:
            return
        with self.local_context(fill_opacity=0.18, text_color=(220, 0, 0)):
            self.set_font(self.base_family, "B", 150)
            width = self.get_string_width("TEST")
            cx, cy = self.w / 2, self.h / 2
            with self.rotation(angle=50, x=cx, y=cy):
                self.text(cx - width / 2, cy + 18, "TEST")
        self.set_font(self.base_family, "B", 9)
        self.set_text_color(220, 0, 0)
        self.cell(0, 6, self.txt(self.labels["test_banner"]), align="C")
        self.set_text_color(0, 0, 0)
        self.ln(8)

    def footer(self) -> None:
        self.set_y(-20)
        self.set_font(self.base_family, "", 7)
        self.set_text_color(90, 90, 90)
        if self.invoice.footer:
            self.multi_cell(0, 3.5, self.txt(self.invoice.footer), align="C", new_x="LMARGIN")
        self.set_y(-10)
        self.cell(0, 4, self.labels["page"].format(page=self.page_no()), align="R")
        self.set_text_color(0, 0, 0)


def render_pdf(doc: InvoiceDocument, *, logo: bytes | None = None) -> bytes:
    """The invoice or credit note as PDF bytes; the same document always gives the same bytes."""
    pdf = _InvoicePDF(doc, _find_fonts())
    issued = dt.datetime.combine(doc.issue_date, dt.time(0), tzinfo=dt.UTC)
    pdf.set_creation_date(issued)
    pdf.set_creator("caisse")
    pdf.set_producer("caisse (fpdf2)")
    pdf.set_author(pdf.txt(doc.seller.legal_name))
    pdf.set_title(pdf.txt(f"{pdf.labels[doc.kind]} {doc.number}"))
    pdf.set_lang("fr-FR" if doc.language == "fr" else "en")
    if pdf.has_unicode:
        # fpdf2 would stamp the wall-clock time into the PDF/A metadata; give it ours.
        pdf.set_xmp_metadata(_xmp(pdf, issued))
    pdf.add_page()
    _draw_heading(pdf, doc, logo)
    _draw_parties(pdf, doc)
    _draw_lines(pdf, doc)
    _draw_totals(pdf, doc)
    _draw_mentions(pdf, doc)
    return bytes(pdf.output())


def _xmp(pdf: _InvoicePDF, when: dt.datetime) -> str:
    """PDF/A-3B identification and document info, dated by the document, not by the clock."""
    stamp = when.isoformat(timespec="seconds")
    title, author = escape(pdf.title or ""), escape(str(getattr(pdf, "author", "")))
    producer = escape(str(getattr(pdf, "producer", "")))
    return f"""<x:xmpmeta xmlns:x="adobe:ns:meta/">
  <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
    <rdf:Description rdf:about=""
        xmlns:dc="http://purl.org/dc/elements/1.1/"
        xmlns:xmp="http://ns.adobe.com/xap/1.0/"
        xmlns:pdf="http://ns.adobe.com/pdf/1.3/"
        xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
      <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li></rdf:Alt></dc:title>
      <dc:creator><rdf:Seq><rdf:li>{author}</rdf:li></rdf:Seq></dc:creator>
      <xmp:CreatorTool>caisse</xmp:CreatorTool>
      <xmp:CreateDate>{stamp}</xmp:CreateDate>
      <xmp:ModifyDate>{stamp}</xmp:ModifyDate>
      <xmp:MetadataDate>{stamp}</xmp:MetadataDate>
      <pdf:Producer>{producer}</pdf:Producer>
      <pdfaid:part>3</pdfaid:part>
      <pdfaid:conformance>B</pdfaid:conformance>
    </rdf:Description>
  </rdf:RDF>
</x:xmpmeta>"""


def _draw_heading(pdf: _InvoicePDF, doc: InvoiceDocument, logo: bytes | None) -> None:
    top = pdf.get_y()
    if logo:
        pdf.image(io.BytesIO(logo), x=_MARGIN, y=top, h=18)
    labels = pdf.labels
    pdf.set_font(pdf.base_family, "B", 18)
    pdf.set_xy(pdf.w / 2, top)
    pdf.cell(pdf.w / 2 - _MARGIN, 9, pdf.txt(labels[doc.kind]), align="R")
    pdf.ln(10)
    pdf.set_font(pdf.base_family, "", 9)
    meta = [
        (labels["number"], doc.number),
        (labels["issue_date"], format_date(doc.issue_date, doc.language)),
        (
            labels["refund_date" if doc.kind == "credit_note" else "payment_date"],
            format_date(doc.payment_date, doc.language),
        ),
        (labels["order_reference"], doc.order_reference),
    ]
    if doc.related_invoice_number:
        meta.append((labels["related_invoice"], doc.related_invoice_number))
    for label, value in meta:
        pdf.set_x(pdf.w / 2)
        pdf.cell(pdf.w / 2 - _MARGIN, 4.8, pdf.txt(f"{label} : {value}"), align="R")
        pdf.ln(4.8)
    pdf.set_y(max(pdf.get_y(), top + 22) + 4)


def _party_lines(party: Party, pdf: _InvoicePDF, *, french: bool) -> list[str]:
    lines = [*party.address_lines, f"{party.postcode} {party.city}".strip(), party.country]
    if party.registration_number:
        digits = party.registration_number.replace(" ", "")
        name = pdf.labels["registration"]
        if french and digits.isdigit() and len(digits) in (9, 14):
            name = "SIREN" if len(digits) == 9 else "SIRET"
        lines.append(f"{name} : {party.registration_number}")
    if party.vat_number:
        lines.append(f"{pdf.labels['vat_number']} : {party.vat_number}")
    if party.email:
        lines.append(party.email)
    return lines


def _draw_parties(pdf: _InvoicePDF, doc: InvoiceDocument) -> None:
    top = pdf.get_y()
    column = (pdf.w - 2 * _MARGIN) / 2 - 5
    bottoms = []
    for x, title, party in (
        (_MARGIN, pdf.labels["seller"], doc.seller),
        (pdf.w / 2 + 5, pdf.labels["buyer"], doc.buyer),
    ):
        pdf.set_xy(x, top)
        pdf.set_font(pdf.base_family, "", 8)
        pdf.set_text_color(90, 90, 90)
        pdf.cell(column, 4.5, pdf.txt(title.upper()))
        pdf.set_text_color(0, 0, 0)
        pdf.set_xy(x, top + 5)
        pdf.set_font(pdf.base_family, "B", 10)
        pdf.multi_cell(column, 5, pdf.txt(party.legal_name), new_x="LEFT")
        pdf.set_font(pdf.base_family, "", 9)
        french = party.country == "FR"
        for line in _party_lines(party, pdf, french=french):
            pdf.set_x(x)
            pdf.multi_cell(column, 4.5, pdf.txt(line), new_x="LEFT")
        bottoms.append(pdf.get_y())
    pdf.set_y(max(bottoms) + 6)


def _quantity(value: Decimal | int, language: Language) -> str:
    text = format(Decimal(value).normalize(), "f")
    return text.replace(".", ",") if language == "fr" else text


def _draw_lines(pdf: _InvoicePDF, doc: InvoiceDocument) -> None:
    labels, lang, cur = pdf.labels, doc.language, doc.currency
    right = ("", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT")
    headings = FontFace(emphasis="BOLD", fill_color=(235, 235, 235))
    pdf.set_font(pdf.base_family, "", 8)
    with pdf.table(
        col_widths=(62, 12, 22, 14, 22, 22, 26),
        width=pdf.w - 2 * _MARGIN,
        headings_style=headings,
        borders_layout="HORIZONTAL_LINES",
        line_height=4.6,
        text_align="LEFT",
        padding=1.2,
    ) as table:
        row = table.row()
        for key, align in zip(
            ("description", "quantity", "unit_net", "rate", "net", "tax", "gross"),
            right,
            strict=True,
        ):
            row.cell(pdf.txt(labels[key]), align=align or "LEFT")
        for line in doc.totals.lines:
            values = (
                line.line.description,
                _quantity(line.line.quantity, lang),
                format_money(line.unit_net, cur, lang),
                format_rate(line.line.tax_rate, lang),
                format_money(line.net, cur, lang),
                format_money(line.tax, cur, lang),
                format_money(line.gross, cur, lang),
            )
            row = table.row()
            for value, align in zip(values, right, strict=True):
                row.cell(pdf.txt(value), align=align or "LEFT")
    pdf.ln(4)


def _draw_totals(pdf: _InvoicePDF, doc: InvoiceDocument) -> None:
    labels, lang, cur, totals = pdf.labels, doc.language, doc.currency, doc.totals
    needed = 14 + 5 * len(totals.vat) + 22
    if pdf.get_y() + needed > pdf.h - pdf.b_margin:
        pdf.add_page()
    top = pdf.get_y()
    # VAT breakdown on the left half.
    pdf.set_font(pdf.base_family, "B", 9)
    pdf.cell(95, 5, pdf.txt(labels["vat_breakdown"]))
    pdf.ln(5.5)
    pdf.set_font(pdf.base_family, "", 8)
    with pdf.table(
        col_widths=(18, 26, 24, 27),
        width=95,
        align="LEFT",
        borders_layout="HORIZONTAL_LINES",
        headings_style=FontFace(emphasis="BOLD"),
        line_height=4.4,
        padding=1,
    ) as table:
        row = table.row()
        for key in ("rate", "base", "tax", "gross"):
            row.cell(pdf.txt(labels[key]), align="RIGHT")
        for vat in totals.vat:
            row = table.row()
            for value in (
                format_rate(vat.rate, lang),
                format_money(vat.net, cur, lang),
                format_money(vat.tax, cur, lang),
                format_money(vat.gross, cur, lang),
            ):
                row.cell(pdf.txt(value), align="RIGHT")
    bottom_left = pdf.get_y()
    # Totals on the right half.
    pdf.set_y(top)
    grand = labels["total_credit" if doc.kind == "credit_note" else "total_gross"]
    for label, amount, bold in (
        (labels["total_net"], totals.net, False),
        (labels["total_tax"], totals.tax, False),
        (grand, totals.gross, True),
    ):
        pdf.set_x(pdf.w - _MARGIN - 80)
        pdf.set_font(pdf.base_family, "B" if bold else "", 11 if bold else 9)
        pdf.cell(48, 6, pdf.txt(label), align="R")
        pdf.cell(32, 6, pdf.txt(format_money(amount, cur, lang)), align="R")
        pdf.ln(6.5)
    pdf.set_y(max(bottom_left, pdf.get_y()) + 4)
    # Paid ("Acquittée"): these documents are issued after the payment (or refund) happened.
    template = labels["refunded" if doc.kind == "credit_note" else "paid"]
    pdf.set_font(pdf.base_family, "B", 9)
    paid = template.format(
        date=format_date(doc.payment_date, lang),
        method=payment_method_label(doc.payment_method, lang),
    )
    pdf.multi_cell(0, 5, pdf.txt(paid), new_x="LMARGIN")
    pdf.ln(2)


def _draw_mentions(pdf: _InvoicePDF, doc: InvoiceDocument) -> None:
    mentions: list[str] = []
    if doc.vat_exemption_reason:
        mentions.append(doc.vat_exemption_reason)
    if doc.is_french_seller:
        labels = pdf.labels
        mentions += [labels["penalties"], labels["indemnity"], labels["discount"]]
    if not mentions:
        return
    pdf.set_font(pdf.base_family, "", 7.5)
    pdf.set_text_color(60, 60, 60)
    for mention in mentions:
        pdf.multi_cell(0, 3.8, pdf.txt(mention), new_x="LMARGIN")
    pdf.set_text_color(0, 0, 0)
