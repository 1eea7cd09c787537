"""Invoices, credit notes and the e-mails that carried them (test mailbox included)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import defer

from caisse.errors import Conflict, NotFound
from caisse.invoices.views import email_view, invoice_view
from caisse.mail.compose import attachment_filename
from caisse.storage import models as m
from caisse.storage.pagination import listing, page
from caisse.web.deps import CallerDep, RuntimeDep

router = APIRouter(tags=["invoices"])


@router.get("/v1/invoices", summary="Invoices and credit notes, newest first")
def list_invoices(
    rt: RuntimeDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query()] = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
    order_id: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    stmt = (
        select(m.Invoice)
        .where(m.Invoice.tenant_id == caller.tenant_id, m.Invoice.environment == caller.environment)
        .options(defer(m.Invoice.pdf))
    )
    if order_id:
        stmt = stmt.where(m.Invoice.order_id == order_id)
    if kind:
        stmt = stmt.where(m.Invoice.kind == kind)
    with rt.db.read() as s:
        rows, more = page(
            s,
            stmt,
            m.Invoice.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return listing("/v1/invoices", [invoice_view(r) for r in rows], more)


def _get(rt: RuntimeDep, caller: CallerDep, invoice_id: str, *, with_pdf: bool) -> m.Invoice:
    stmt = select(m.Invoice).where(
        m.Invoice.id == invoice_id,
        m.Invoice.tenant_id == caller.tenant_id,
        m.Invoice.environment == caller.environment,
    )
    if not with_pdf:
        stmt = stmt.options(defer(m.Invoice.pdf))
    with rt.db.read() as s:
        row = s.execute(stmt).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No such invoice: {invoice_id!r}", param="id")
    return row


@router.get("/v1/invoices/{invoice_id}", summary="An invoice or credit note")
def get_invoice(invoice_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return invoice_view(_get(rt, caller, invoice_id, with_pdf=False))


@router.get(
    "/v1/invoices/{invoice_id}/pdf",
    summary="The PDF as issued (never changes; its SHA-256 is in the invoice)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def get_invoice_pdf(invoice_id: str, rt: RuntimeDep, caller: CallerDep) -> Response:
    row = _get(rt, caller, invoice_id, with_pdf=True)
    if row.pdf is None:
        raise Conflict("The PDF of this invoice is being generated; retry shortly")
    return Response(
        row.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{attachment_filename(row.number)}"',
            "ETag": f'"{row.pdf_sha256}"',
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )


@router.get("/v1/emails", summary="E-mails to buyers; in test mode, the test mailbox")
def list_emails(
    rt: RuntimeDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query()] = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
    invoice_id: str | None = None,
    order_id: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    stmt = select(m.Email).where(
        m.Email.tenant_id == caller.tenant_id, m.Email.environment == caller.environment
    )
    if invoice_id:
        stmt = stmt.where(m.Email.invoice_id == invoice_id)
    if order_id:
        stmt = stmt.where(m.Email.order_id == order_id)
    if status:
        stmt = stmt.where(m.Email.status == status)
    with rt.db.read() as s:
        rows, more = page(
            s,
            stmt,
            m.Email.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return listing("/v1/emails", [email_view(r) for r in rows], more)


@router.get("/v1/emails/{email_id}", summary="One e-mail with its text and attachments")
def get_email(email_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.read() as s:
        row = s.execute(
            select(m.Email).where(
                m.Email.id == email_id,
                m.Email.tenant_id == caller.tenant_id,
                m.Email.environment == caller.environment,
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"No such email: {email_id!r}", param="id")
        return email_view(row)
