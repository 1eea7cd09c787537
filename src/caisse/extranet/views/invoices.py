"""Download an order's invoice or credit note: the stored PDF, as issued, of the signed-in
merchant's environment only (another tenant's or environment's document is not found)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from starlette.responses import Response

from caisse.errors import Conflict, NotFound
from caisse.extranet.pages import PageDep
from caisse.mail.compose import attachment_filename
from caisse.storage import models as m

router = APIRouter()


@router.get("/invoices/{invoice_id}.pdf")
def invoice_pdf(invoice_id: str, page: PageDep) -> Response:
    with page.rt.db.read() as s:
        row = s.execute(
            select(m.Invoice).where(
                m.Invoice.id == invoice_id,
                m.Invoice.tenant_id == page.user.tenant_id,
                m.Invoice.environment == page.user.environment,
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound("No such invoice")
        if row.pdf is None:
            raise Conflict("The PDF of this invoice is being generated; retry shortly")
        pdf, number = row.pdf, row.number
    name = attachment_filename(number) if number else f"{invoice_id}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
