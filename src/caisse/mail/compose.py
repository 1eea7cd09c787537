"""Compose the e-mail that carries an invoice or credit note PDF to the buyer.

One template per language (``templates/{fr,en}.{txt,html}.j2``) covers both kinds; the plain text
part comes first and the HTML part is its alternative, as mail clients expect. A test document's
subject starts with "[TEST]" and its body says it has no accounting value: whether such a
message may be sent at all (only live mail reaches real customers) is decided by the caller.
"""

from __future__ import annotations

import datetime as dt
import re
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from caisse.clock import SystemClock, check_aware
from caisse.errors import InvalidRequest
from caisse.invoices.document import InvoiceDocument, format_date, format_money

__all__ = ["attachment_filename", "compose_invoice_email"]

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

_SUBJECTS = {
    ("fr", "invoice"): "Votre facture {number} – {seller}",
    ("fr", "credit_note"): "Votre avoir {number} – {seller}",
    ("en", "invoice"): "Your invoice {number} from {seller}",
    ("en", "credit_note"): "Your credit note {number} from {seller}",
}


def _one_line(text: str) -> str:
    """Header values must not carry line breaks (header injection)."""
    return " ".join(text.split())


def attachment_filename(number: str) -> str:
    """'F-2026/0001' -> 'F-2026-0001.pdf': the invoice number, safe in any mail client."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", number).strip("-.") or "invoice"
    return f"{safe}.pdf"


def compose_invoice_email(
    doc: InvoiceDocument,
    pdf: bytes,
    *,
    sender: str,
    recipient: str,
    now: dt.datetime | None = None,
) -> EmailMessage:
    """A ready-to-send message: text + HTML alternative, the PDF attached under its number."""
    for value, param in ((sender, "sender"), (recipient, "recipient")):
        if "@" not in parseaddr(value)[1] or "\n" in value or "\r" in value:
            raise InvalidRequest(f"Invalid e-mail address for {param}", param=param)
    lang = doc.language
    subject = _SUBJECTS[(lang, doc.kind)].format(number=doc.number, seller=doc.seller.legal_name)
    if doc.test_mode:
        subject = f"[TEST] {subject}"
    subject = _one_line(subject)
    context = {
        "subject": subject,
        "kind": doc.kind,
        "test_mode": doc.test_mode,
        "number": doc.number,
        "issue_date": format_date(doc.issue_date, lang),
        "order_reference": doc.order_reference,
        "related_invoice_number": doc.related_invoice_number or "",
        "total": format_money(doc.totals.gross, doc.currency, lang),
        "buyer_name": doc.buyer.legal_name,
        "seller_name": doc.seller.legal_name,
    }
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(check_aware(now or SystemClock().now()))
    domain = parseaddr(sender)[1].rpartition("@")[2]
    message["Message-ID"] = make_msgid(domain=domain or None)
    message.set_content(_ENV.get_template(f"{lang}.txt.j2").render(context))
    message.add_alternative(_ENV.get_template(f"{lang}.html.j2").render(context), subtype="html")
    message.add_attachment(
        pdf, maintype="application", subtype="pdf", filename=attachment_filename(doc.number)
    )
    # After the parts: set_content() and make_mixed() move Content-* headers into subparts.
    message["Content-Language"] = lang
    return message
