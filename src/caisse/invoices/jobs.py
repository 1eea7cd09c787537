"""Job handlers: issue an invoice or credit note, and e-mail it to the buyer.

Issuing runs the two steps of ``services`` (number + snapshot, then PDF) in separate
transactions and completes the job with the PDF. Mail is test/live aware: a test document's
message is kept in the test mailbox (the ``emails`` row holds it) and never reaches SMTP; a live
one goes through ``CAISSE_SMTP_URL``. Without SMTP configured, a live message is recorded as
``not_sent`` with the reason, and the job ends. Transient SMTP failures (4xx, network) are
retried on the e-mail's own schedule (``EMAIL_RETRY_SCHEDULE``, about a day), with the same
Message-ID on every attempt; permanent ones (5xx) and the last attempt mark it ``failed``.

A credit note job also watches refunds still in flight: only settled refunds are credited, so
the job runs again (``services.refund_recheck_at``) until the pending ones succeed or fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from email.message import EmailMessage

from caisse.errors import InvalidRequest
from caisse.invoices import services
from caisse.invoices.sink import ISSUE_CREDIT_NOTE, ISSUE_INVOICE, SEND_EMAIL
from caisse.jobs.registry import JobContext, handler
from caisse.runtime import Runtime
from caisse.storage import jobs as jobstore
from caisse.storage import models as m

log = logging.getLogger("caisse.invoices")


def _issue(ctx: JobContext, opened: m.Invoice | None, recheck: dt.datetime | None = None) -> None:
    """Render and store ``opened``; then end the job, or (``recheck``) run it again then."""
    if opened is None or opened.pdf_sha256 is not None:
        if recheck is not None:  # nothing to draw now, but refunds are still in flight
            with ctx.rt.db.write() as s:
                ctx.reschedule(s, recheck, postpone=True)
        return  # otherwise nothing to issue, or issued already: the worker completes the job
    pdf = services.render(opened)  # outside any transaction: no lock held while drawing
    with ctx.rt.db.write() as s:
        services.store_pdf(s, opened.id, pdf, now=ctx.rt.clock.now())
        if recheck is not None:
            ctx.reschedule(s, recheck, postpone=True)
        else:
            ctx.complete(s)
    log.info(
        "invoice issued",
        extra={"action": "invoice.issued", "invoice": opened.id, "number": opened.number},
    )


@handler(ISSUE_INVOICE)
def issue_invoice(ctx: JobContext) -> None:
    rt = ctx.rt
    with rt.db.write() as s:
        opened = services.open_invoice(
            s, ctx.payload["order_id"], now=rt.clock.now(), clock=rt.clock
        )
        order = s.get(m.Order, ctx.payload["order_id"])  # loaded by open_invoice already
        if opened is not None and order is not None and services.uncaptured(order) > 0:
            # The rest a partial capture left, credited once this invoice exists: enqueued in
            # the transaction that numbers it, so the credit note never runs before it.
            jobstore.enqueue(
                s,
                ISSUE_CREDIT_NOTE,
                f"{order.id}:uncaptured",
                {"order_id": order.id, "amount_refunded": 0},
                now=rt.clock.now(),
                tenant_id=order.tenant_id,
            )
    _issue(ctx, opened)


@handler(ISSUE_CREDIT_NOTE)
def issue_credit_note(ctx: JobContext) -> None:
    """Credit what was refunded for good; while refunds are pending, look again later."""
    rt, order_id = ctx.rt, ctx.payload["order_id"]
    with rt.db.write() as s:
        opened = services.open_credit_note(
            s, order_id, int(ctx.payload["amount_refunded"]), now=rt.clock.now(), clock=rt.clock
        )
        pending, oldest = services.unsettled_refunds(s, order_id)
    recheck = services.refund_recheck_at(oldest, rt.clock.now()) if pending else None
    _issue(ctx, opened, recheck)


def _warn_without_fonts() -> None:
    """Said once when a worker loads the handlers, long before a live invoice fails on it."""
    from caisse.invoices.render import unicode_fonts_available

    if not unicode_fonts_available():
        log.error(
            "DejaVu Sans not found: live invoices cannot be issued (install fonts-dejavu-core)",
            extra={"action": "invoice.fonts_missing"},
        )


_warn_without_fonts()


# -- mail -------------------------------------------------------------------------------------

#: Delay before each new attempt after a transient SMTP failure (4xx, network): about a day in
#: all (23 h 51 min), long enough to ride out an SMTP outage or a greylisting server.
EMAIL_RETRY_SCHEDULE: tuple[dt.timedelta, ...] = tuple(
    dt.timedelta(minutes=minutes) for minutes in (1, 5, 15, 30, 60, 120, 240, 480, 480)
)
EMAIL_MAX_ATTEMPTS = len(EMAIL_RETRY_SCHEDULE) + 1


@dataclass
class _Outgoing:
    email_id: str
    environment: str
    attempt: int
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
        if email.message_id:  # one Message-ID across attempts: duplicates can be spotted
            message.replace_header("Message-ID", email.message_id)
        seller_email = invoice.snapshot["seller"].get("email")
        if seller_email:
            message["Reply-To"] = seller_email
        email.sender = str(message["From"])
        email.subject = str(message["Subject"])
        email.message_id = str(message["Message-ID"])
        email.attempts += 1
        return _Outgoing(email.id, email.environment, email.attempts, message)


def _finish(
    ctx: JobContext,
    out: _Outgoing,
    status: str,
    *,
    error: str | None = None,
    keep: bool = True,
    retry_at: dt.datetime | None = None,
) -> None:
    rt = ctx.rt
    with rt.db.write() as s:
        email = s.get(m.Email, out.email_id)
        assert email is not None
        email.status = status
        email.error = error
        if keep:
            email.raw = out.message.as_bytes()
        if status in ("sent", "captured"):
            email.sent_at = rt.clock.now()
        if retry_at is not None:  # the e-mail's own schedule, in the same transaction
            ctx.reschedule(s, retry_at)


@handler(SEND_EMAIL)
async def send_invoice_email(ctx: JobContext) -> None:
    from caisse.mail.smtp import MailError, parse_smtp_url, send

    rt = ctx.rt
    out = await asyncio.to_thread(_prepare, rt, ctx.payload["email_id"])
    if out is None:
        return
    if out.environment != "live":
        # Test documents never reach an SMTP server: the test mailbox is the emails table.
        await asyncio.to_thread(_finish, ctx, out, "captured")
        return
    if rt.settings.smtp_url is None:
        reason = "CAISSE_SMTP_URL is not configured: live e-mails cannot be sent"
        await asyncio.to_thread(_finish, ctx, out, "not_sent", error=reason)
        return
    try:
        config = parse_smtp_url(rt.settings.smtp_url.reveal())
    except InvalidRequest as exc:
        await asyncio.to_thread(_finish, ctx, out, "failed", error=str(exc))
        return
    try:
        await send(config, out.message)
    except MailError as exc:
        if exc.permanent or out.attempt >= EMAIL_MAX_ATTEMPTS:
            await asyncio.to_thread(_finish, ctx, out, "failed", error=str(exc))
            return
        retry_at = rt.clock.now() + EMAIL_RETRY_SCHEDULE[out.attempt - 1]
        await asyncio.to_thread(
            _finish, ctx, out, "retrying", error=str(exc), keep=False, retry_at=retry_at
        )
        return
    await asyncio.to_thread(_finish, ctx, out, "sent")
