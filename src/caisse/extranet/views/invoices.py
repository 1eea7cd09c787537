"""Download an order's invoice or credit note (PDF rendered by ``caisse.invoices``)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from starlette.responses import Response

from caisse.errors import NotFound
from caisse.extranet.pages import PageDep
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
        if row is None or row.pdf is None:
            raise NotFound("No such invoice")
        pdf, number = row.pdf, row.number
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{number or invoice_id}.pdf"'},
    )
