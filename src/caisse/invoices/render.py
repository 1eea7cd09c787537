"""Lay out an ``InvoiceDocument`` as a PDF (with ``caisse.invoices.pdf``).

Policies this module owns:

* **TEST mark.** A document of the test environment carries a large diagonal "TEST" and a banner
  on every page (drawn whenever a page is started, including the ones a long lines table breaks
  onto); a live document carries none of it.
* **Determinism.** The same document gives the same bytes: the PDF dates are the issue date
  (midnight UTC) and the file /ID is a hash of the content, so a stored hash can be checked by
  rendering again with the same fonts and caisse version.
* **Fonts.** DejaVu Sans (TrueType, full Unicode, embedded and subset) is looked up in the usual
  system font folders; the PDF is then PDF/A-3B, ready for Factur-X. Without it the renderer
  falls back to the core Helvetica font: text is transliterated to Latin-1 ("€" becomes "EUR")
  and the output is not PDF/A (nor Factur-X).
* **Factur-X.** Given the CII XML, the PDF/A-3 carries it as ``factur-x.xml`` (an associated
  file, ``/AFRelationship /Data``) with the Factur-X XMP extension schema, in the same pass.
* **French mentions.** When the seller is in France the PDF prints SIREN/SIRET, RCS, legal
  form and share capital, the VAT number and the payment date ("Acquittée le …"); to a business
  buyer also the late-payment penalties, the 40 € recovery indemnity (Code de commerce L441-10
  and D441-5) and the early-payment discount, which consumers are not owed.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from caisse.errors import CaisseError
from caisse.invoices.document import (
    InvoiceDocument,
    Language,
    Party,
    format_date,
    format_money,
    format_rate,
)
from caisse.invoices.fonts import Face, FontUse, core_face, true_type_face
from caisse.invoices.pdf import Attachment, Document, K, Page

__all__ = [
    "FacturXPart",
    "FontsMissing",
    "payment_method_label",
    "render_pdf",
    "require_unicode_fonts",
    "unicode_fonts_available",
]

_FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu",
    "/usr/share/fonts/TTF",
    "/usr/share/fonts/truetype",
    "/usr/local/share/fonts",
    "/Library/Fonts",
)
_MARGIN = 15.0
_BOTTOM = 25.0  # content stops this far from the bottom edge (room for the footer)
_PAD = 1.0  # text inset in a cell, as the usual PDF libraries do
_GREY, _RED, _BLACK = (90, 90, 90), (220, 0, 0), (0, 0, 0)

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
        "capital": "{form} au capital de {capital}",
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
        "capital": "{form} with a share capital of {capital}",
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


class FontsMissing(CaisseError):
    """Live documents need DejaVu Sans (PDF/A-3 for Factur-X); the machine has none."""

    code = "fonts_missing"


def unicode_fonts_available() -> bool:
    """Whether DejaVu Sans regular and bold were found (PDF/A and Factur-X possible)."""
    return _find_fonts() is not None


def require_unicode_fonts() -> None:
    """Refuse early (before a live number is taken) when Factur-X cannot be written."""
    if not unicode_fonts_available():
        raise FontsMissing(
            "DejaVu Sans was not found in " + ", ".join(_FONT_DIRS) + ": live invoices must be "
            "PDF/A-3 with Factur-X; install the fonts-dejavu-core package"
        )


def _faces() -> tuple[Face, Face]:
    found = _find_fonts()
    if found is None:
        return core_face(False), core_face(True)
    return true_type_face(found.regular), true_type_face(found.bold)


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


@dataclass(frozen=True, slots=True)
class FacturXPart:
    """What a Factur-X PDF/A-3 adds: the CII XML and its XMP description."""

    xml: bytes
    xmp: str  # rdf:Description elements of the Factur-X extension schema
    filename: str = "factur-x.xml"


class _Layout:
    """A cursor over the pages of one document: cells, wrapped paragraphs, page breaks."""

    def __init__(self, doc: InvoiceDocument, faces: tuple[Face, Face]) -> None:
        self.doc = doc
        self.pdf = Document(faces)
        self.regular, self.bold = self.pdf.fonts
        self.unicode = self.pdf.pdfa
        self.labels = _LABELS[doc.language]
        self.w, self.h = self.pdf.width, self.pdf.height
        self.page: Page = self.pdf.add_page()
        self.y = _MARGIN
        self._header()

    def txt(self, text: str) -> str:
        return text if self.unicode else _latin1(text)

    def width(self, text: str, font: FontUse, size: float) -> float:
        """Width of ``text`` in millimetres."""
        return font.face.text_width(text, size) / K

    # -- drawing ------------------------------------------------------------------------

    def cell(
        self,
        x: float,
        w: float,
        h: float,
        text: str,
        font: FontUse,
        size: float,
        align: str = "L",
        color: tuple[int, int, int] = _BLACK,
        y: float | None = None,
    ) -> None:
        """One line of text in the box (x, y, w, h), vertically centred, as PDF tools do."""
        text = self.txt(text)
        top = self.y if y is None else y
        if align == "R":
            tx = x + w - _PAD - self.width(text, font, size)
        elif align == "C":
            tx = x + (w - self.width(text, font, size)) / 2
        else:
            tx = x + _PAD
        self.page.text(tx, top + h / 2 + 0.3 * size / K, font, size, text, color)

    def wrap(self, text: str, font: FontUse, size: float, w: float) -> list[str]:
        """Greedy line breaking at spaces (long words are cut) to fit ``w`` millimetres."""
        text = self.txt(text)
        limit = (w - 2 * _PAD) * K * 1000 / size  # in font units
        face = font.face
        if "\n" not in text and face.text_width(text, 1000) <= limit:
            return [text]  # the usual case: it fits
        widths: dict[str, float] = face.width  # type: ignore[assignment]
        missing = face.missing_width
        lines: list[str] = []
        for paragraph in text.split("\n"):
            line, line_w = "", 0.0
            for word in paragraph.split(" "):
                word_w = sum(widths.get(ch, missing) for ch in word)
                space = widths.get(" ", missing) if line else 0.0
                if line and line_w + space + word_w <= limit:
                    line, line_w = f"{line} {word}", line_w + space + word_w
                    continue
                if line:
                    lines.append(line)
                line, line_w = "", 0.0
                while word_w > limit and len(word) > 1:  # cut a word longer than the line
                    cut, cut_w = 1, widths.get(word[0], missing)
                    while cut < len(word) and cut_w + widths.get(word[cut], missing) <= limit:
                        cut_w += widths.get(word[cut], missing)
                        cut += 1
                    lines.append(word[:cut])
                    word = word[cut:]
                    word_w -= cut_w
                line, line_w = word, word_w
            lines.append(line)
        return lines

    def paragraph(
        self,
        x: float,
        w: float,
        line_h: float,
        text: str,
        font: FontUse,
        size: float,
        align: str = "L",
        color: tuple[int, int, int] = _BLACK,
        breaks: bool = True,
    ) -> None:
        """Wrapped text from the cursor down; moves the cursor below it."""
        for line in self.wrap(text, font, size, w):
            if breaks:
                self.ensure(line_h)
            self.cell(x, w, line_h, line, font, size, align, color)
            self.y += line_h

    def ensure(self, height: float) -> bool:
        """Start a new page unless ``height`` millimetres still fit; True if it did."""
        if self.y + height <= self.h - _BOTTOM:
            return False
        self.page = self.pdf.add_page()
        self.y = _MARGIN
        self._header()
        return True

    def _header(self) -> None:
        if not self.doc.test_mode:
            return
        width = self.width("TEST", self.bold, 150)
        cx, cy = self.w / 2, self.h / 2
        # "TEST" centred on the page, turned 50° about its centre (baseline 18 mm below it).
        angle = 50.0
        from math import cos, radians, sin

        c, s = cos(radians(angle)), sin(radians(angle))
        dx, dy = -width / 2, 18.0  # offset from the centre, in the unrotated frame (y down)
        x = cx + dx * c + dy * s
        y = cy - dx * s + dy * c
        self.page.rotated_text(x, y, angle, self.bold, 150, "TEST", _RED, "GS1")
        self.cell(
            _MARGIN, self.w - 2 * _MARGIN, 6, self.labels["test_banner"], self.bold, 9, "C", _RED
        )
        self.y += 8

    def footers(self) -> None:
        """Footer text and "Page n/N" on every page, once the page count is known."""
        pages = self.pdf.pages
        footer = (
            self.wrap(self.doc.footer, self.regular, 7, self.w - 2 * _MARGIN)
            if (self.doc.footer)
            else []
        )
        for number, page in enumerate(pages, start=1):
            self.page, self.y = page, self.h - 20
            for line in footer:
                self.cell(_MARGIN, self.w - 2 * _MARGIN, 3.5, line, self.regular, 7, "C", _GREY)
                self.y += 3.5
            label = self.labels["page"].format(page=number).replace("{nb}", str(len(pages)))
            self.cell(
                _MARGIN, self.w - 2 * _MARGIN, 4, label, self.regular, 7, "R", _GREY, y=self.h - 10
            )

    def table(
        self,
        widths: Sequence[float],
        x: float,
        heading: Sequence[str],
        rows: Sequence[Sequence[str]],
        aligns: Sequence[str],
        size: float,
        line_h: float,
        pad: float,
        fill: tuple[int, int, int] | None,
    ) -> None:
        """Rows of wrapped cells between horizontal rules; the heading repeats on new pages."""
        total = sum(widths)

        def draw(cells: Sequence[str], font: FontUse, shade: bool) -> None:
            wrapped = [self.wrap(v, font, size, w) for v, w in zip(cells, widths, strict=True)]
            height = max(len(lines) for lines in wrapped) * line_h + 2 * pad
            if self.ensure(height) and not shade:
                draw(heading, self.bold, True)
            if shade and fill:
                self.page.fill_rect(x, self.y, total, height, fill)
            self.page.hline(x, x + total, self.y)
            cx = x
            for lines, w, align in zip(wrapped, widths, aligns, strict=True):
                for i, line in enumerate(lines):
                    self.cell(cx, w, line_h, line, font, size, align, y=self.y + pad + i * line_h)
                cx += w
            self.y += height
            self.page.hline(x, x + total, self.y)

        draw(heading, self.bold, True)
        for row in rows:
            draw(row, self.regular, False)


def render_pdf(
    doc: InvoiceDocument, *, logo: bytes | None = None, facturx: FacturXPart | None = None
) -> bytes:
    """The invoice or credit note as PDF bytes; the same input always gives the same bytes.

    With ``facturx`` the XML is embedded in a PDF/A-3; that needs the Unicode fonts, and
    without them ``FontsMissing`` is raised rather than a PDF silently without Factur-X.
    """
    layout = _Layout(doc, _faces())
    if facturx is not None and not layout.unicode:
        raise FontsMissing("Factur-X needs DejaVu Sans (PDF/A-3); install fonts-dejavu-core")
    _draw_heading(layout, doc, logo)
    _draw_parties(layout, doc)
    _draw_lines(layout, doc)
    _draw_totals(layout, doc)
    _draw_mentions(layout, doc)
    layout.footers()
    stamp = doc.issue_date.strftime("%Y%m%d")
    attachments = []
    if facturx is not None:
        attachments.append(
            Attachment(
                facturx.filename,
                facturx.xml,
                "text/xml",
                "Factur-X XML file",
                "Data",
                f"D:{stamp}000000+00'00'",
            )
        )
    return layout.pdf.output(
        title=layout.txt(f"{layout.labels[doc.kind]} {doc.number}"),
        author=layout.txt(doc.seller.legal_name),
        lang="fr-FR" if doc.language == "fr" else "en",
        date=f"D:{stamp}000000+00'00'",
        xmp_date=f"{doc.issue_date.isoformat()}T00:00:00+00:00",
        attachments=attachments,
        xmp_extra=facturx.xmp if attachments and facturx else "",
    )


def _draw_heading(lay: _Layout, doc: InvoiceDocument, logo: bytes | None) -> None:
    top = lay.y
    if logo:
        px_w, px_h = lay.pdf.set_image(logo)
        lay.page.image(_MARGIN, top, 18 * px_w / px_h, 18)
    labels, half = lay.labels, lay.w / 2
    lay.cell(half, half - _MARGIN, 9, labels[doc.kind], lay.bold, 18, "R")
    lay.y += 10
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
        lay.cell(half, half - _MARGIN, 4.8, f"{label} : {value}", lay.regular, 9, "R")
        lay.y += 4.8
    lay.y = max(lay.y, top + 22) + 4


def _party_lines(party: Party, labels: dict[str, str], *, french: bool) -> list[str]:
    lines = [*party.address_lines, f"{party.postcode} {party.city}".strip(), party.country]
    if party.registration_number:
        digits = party.registration_number.replace(" ", "")
        name = labels["registration"]
        if french and digits.isdigit() and len(digits) in (9, 14):
            name = "SIREN" if len(digits) == 9 else "SIRET"
        lines.append(f"{name} : {party.registration_number}")
    if party.rcs:
        lines.append(party.rcs)
    if party.legal_form and party.share_capital:
        lines.append(labels["capital"].format(form=party.legal_form, capital=party.share_capital))
    elif party.legal_form:
        lines.append(party.legal_form)
    if party.vat_number:
        lines.append(f"{labels['vat_number']} : {party.vat_number}")
    if party.email:
        lines.append(party.email)
    return lines


def _draw_parties(lay: _Layout, doc: InvoiceDocument) -> None:
    top = lay.y
    column = (lay.w - 2 * _MARGIN) / 2 - 5
    bottoms = []
    for x, title, party in (
        (_MARGIN, lay.labels["seller"], doc.seller),
        (lay.w / 2 + 5, lay.labels["buyer"], doc.buyer),
    ):
        lay.y = top
        lay.cell(x, column, 4.5, title.upper(), lay.regular, 8, color=_GREY)
        lay.y = top + 5
        lay.paragraph(x, column, 5, party.legal_name, lay.bold, 10, breaks=False)
        for line in _party_lines(party, lay.labels, french=party.country == "FR"):
            lay.paragraph(x, column, 4.5, line, lay.regular, 9, breaks=False)
        bottoms.append(lay.y)
    lay.y = max(bottoms) + 6


def _quantity(value: Decimal | int, language: Language) -> str:
    text = format(Decimal(value).normalize(), "f")
    return text.replace(".", ",") if language == "fr" else text


def _draw_lines(lay: _Layout, doc: InvoiceDocument) -> None:
    labels, lang, cur = lay.labels, doc.language, doc.currency
    keys = ("description", "quantity", "unit_net", "rate", "net", "tax", "gross")
    rows = [
        (
            line.line.description,
            _quantity(line.line.quantity, lang),
            format_money(line.unit_net, cur, lang),
            format_rate(line.line.tax_rate, lang),
            format_money(line.net, cur, lang),
            format_money(line.tax, cur, lang),
            format_money(line.gross, cur, lang),
        )
        for line in doc.totals.lines
    ]
    lay.table(
        (62, 12, 22, 14, 22, 22, 26),
        _MARGIN,
        [labels[k] for k in keys],
        rows,
        ("L", "R", "R", "R", "R", "R", "R"),
        8,
        4.6,
        1.2,
        (235, 235, 235),
    )
    lay.y += 4


def _draw_totals(lay: _Layout, doc: InvoiceDocument) -> None:
    labels, lang, cur, totals = lay.labels, doc.language, doc.currency, doc.totals
    lay.ensure(14 + 5 * len(totals.vat) + 22)
    top = lay.y
    # VAT breakdown on the left half.
    lay.cell(_MARGIN, 95, 5, labels["vat_breakdown"], lay.bold, 9)
    lay.y += 5.5
    rows = [
        (
            format_rate(vat.rate, lang),
            format_money(vat.net, cur, lang),
            format_money(vat.tax, cur, lang),
            format_money(vat.gross, cur, lang),
        )
        for vat in totals.vat
    ]
    lay.table(
        (18, 26, 24, 27),
        _MARGIN,
        [labels[k] for k in ("rate", "base", "tax", "gross")],
        rows,
        ("R",) * 4,
        8,
        4.4,
        1,
        None,
    )
    bottom_left = lay.y
    # Totals on the right half.
    lay.y = top
    grand = labels["total_credit" if doc.kind == "credit_note" else "total_gross"]
    for label, amount, bold in (
        (labels["total_net"], totals.net, False),
        (labels["total_tax"], totals.tax, False),
        (grand, totals.gross, True),
    ):
        font, size = (lay.bold, 11) if bold else (lay.regular, 9)
        x = lay.w - _MARGIN - 80
        lay.cell(x, 48, 6, label, font, size, "R")
        lay.cell(x + 48, 32, 6, format_money(amount, cur, lang), font, size, "R")
        lay.y += 6.5
    lay.y = max(bottom_left, lay.y) + 4
    # Paid ("Acquittée"): these documents are issued after the payment (or refund) happened.
    template = labels["refunded" if doc.kind == "credit_note" else "paid"]
    paid = template.format(
        date=format_date(doc.payment_date, lang),
        method=payment_method_label(doc.payment_method, lang),
    )
    lay.paragraph(_MARGIN, lay.w - 2 * _MARGIN, 5, paid, lay.bold, 9)
    lay.y += 2


def _draw_mentions(lay: _Layout, doc: InvoiceDocument) -> None:
    mentions: list[str] = []
    if doc.vat_exemption_reason:
        mentions.append(doc.vat_exemption_reason)
    if doc.b2b_mentions:
        labels = lay.labels
        mentions += [labels["penalties"], labels["indemnity"], labels["discount"]]
    for mention in mentions:
        lay.paragraph(
            _MARGIN, lay.w - 2 * _MARGIN, 3.8, mention, lay.regular, 7.5, color=(60, 60, 60)
        )
