"""Job handlers: issue an invoice or credit note, and e-mail it to the buyer.

Issuing runs the two steps of ``services`` (number + snapshot, then PDF) in separate
transactions and completes the job with the PDF. Mail is test/live aware: a test document's
message is kept in the test mailbox (the ``emails`` row holds it) and never reaches SMTP; a live
one goes through ``CAISSE_SMTP_URL``. Without SMTP configured, a live message is recorded as
``not_sent`` with the reason, and the job ends. Transient SMTP failures are retried by the
worker (backoff); permanent ones (5xx) and the last attempt mark the e-mail ``failed``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.message import EmailMessage

from caisse.errors import InvalidRequest
from caisse.invoices import services
from caisse.invoices.sink import ISSUE_CREDIT_NOTE, ISSUE_INVOICE, SEND_EMAIL
from caisse.jobs.registry import JobContext, handler
from caisse.runtime import Runtime
from caisse.storage import models as m

log = logging.getLogger("caisse.invoices")


def _issue(ctx: JobContext, opened: m.Invoice | None) -> None:
    if opened is None or opened.pdf_sha256 is not None:
        return  # nothing to issue, or issued already: the worker completes the job
    pdf = services.render(opened)  # outside any transaction: no lock held while drawing
    with ctx.rt.db.write() as s:
        services.store_pdf(s, opened.id, pdf, now=ctx.rt.clock.now())
        ctx.complete(s)
    log.info(
        "invoice issued",
        extra={"action": "invoice.issued", "invoice": opened.id, "number": opened.number},
    )


@handler(ISSUE_INVOICE)
def issue_invoice(ctx: JobContext) -> None:
    with ctx.rt.db.write() as s:
        opened = services.open_invoice(s, ctx.payload["order_id"], now=ctx.rt.clock.now())
    _issue(ctx, opened)


@handler(ISSUE_CREDIT_NOTE)
def issue_credit_note(ctx: JobContext) -> None:
    with ctx.rt.db.write() as s:
        opened = services.open_credit_note(
            s,
            ctx.payload["order_id"],
            int(ctx.payload["amount_refunded"]),
            now=ctx.rt.clock.now(),
        )
    _issue(ctx, opened)


# -- mail -------------------------------------------------------------------------------------


@dataclass
class _Outgoing:
    email_id: str
    environment: str
    message: EmailMessage


def _prepare(rt: Runtime, email_id: str) -> _Outgoing | None:
    from caisse.mail.compose import compose_invoice_email

    with rt.db.write() as s:
        email = s.get(m.Email, email_id)
        if email is None or email.status in ("sent", "captured", "failed", "not_sent"):
            return None
        invoice = s.get(m.Invoice, email.invoice_id)
        assert invoice is not None
        assert invoice.pdf is not None
        doc = services.document_from(invoice)
        message = compose_invoice_email(
            doc,
            invoice.pdf,
            sender=rt.settings.mail_from,
            recipient=email.recipient,
            now=rt.clock.now(),
        )
        seller_email = invoice.snapshot["seller"].get("email")
        if seller_email:
            message["Reply-To"] = seller_email
        email.sender = str(message["From"])
        email.subject = str(message["Subject"])
        email.message_id = str(message["Message-ID"])
        email.attempts += 1
        return _Outgoing(email.id, email.environment, message)


def _finish(
    rt: Runtime, out: _Outgoing, status: str, *, error: str | None = None, keep: bool = True
) -> None:
    with rt.db.write() as s:
        email = s.get(m.Email, out.email_id)
        assert email is not None
        email.status = status
        email.error = error
        if keep:
            email.raw = out.message.as_bytes()
        if status in ("sent", "captured"):
            email.sent_at = rt.clock.now()


@handler(SEND_EMAIL)
async def send_invoice_email(ctx: JobContext) -> None:
    from caisse.mail.smtp import MailError, parse_smtp_url, send

    rt = ctx.rt
    out = await asyncio.to_thread(_prepare, rt, ctx.payload["email_id"])
    if out is None:
        return
    if out.environment != "live":
        # Test documents never reach an SMTP server: the test mailbox is the emails table.
        await asyncio.to_thread(_finish, rt, out, "captured")
        return
    if rt.settings.smtp_url is None:
        reason = "CAISSE_SMTP_URL is not configured: live e-mails cannot be sent"
        await asyncio.to_thread(_finish, rt, out, "not_sent", error=reason)
        return
    try:
        config = parse_smtp_url(rt.settings.smtp_url.reveal())
    except InvalidRequest as exc:
        await asyncio.to_thread(_finish, rt, out, "failed", error=str(exc))
        return
    try:
        await send(config, out.message)
    except MailError as exc:
        last = ctx.job.attempts >= ctx.job.max_attempts
        if exc.permanent or last:
            await asyncio.to_thread(_finish, rt, out, "failed", error=str(exc))
            return
        await asyncio.to_thread(_finish, rt, out, "retrying", error=str(exc), keep=False)
        raise
    await asyncio.to_thread(_finish, rt, out, "sent")
