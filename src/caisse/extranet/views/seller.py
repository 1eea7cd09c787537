"""Seller details: the merchant's legal identity printed on every invoice and credit note
(name, address, VAT and registration numbers, footer, language). One set per merchant, for
test and live alike; saved through :func:`caisse.tenants.services.update_tenant`, the service
behind ``PATCH /v1/tenant`` (issued invoices keep the details they were issued with)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from caisse.errors import CaisseError
from caisse.extranet import queries
from caisse.extranet.pages import FormDep, Page, PageDep, redirect, render
from caisse.tenants import services
from caisse.tenants.services import Caller

router = APIRouter()

# The form's fields, in order (the logo travels through the API only).
FIELDS = tuple(f for f in services.LEGAL_FIELDS if f != "logo")
REQUIRED = ("legal_name", "address_line1", "postcode", "city", "country")


def _page(page: Page, *, status: int = 200, **extra: Any) -> Response:
    with page.rt.db.read() as s:
        tenant = services.get_tenant(s, page.user.tenant_id)
        legal = services.legal_view(tenant.legal)
    return render(
        page,
        "seller.html",
        legal=legal,
        fields=FIELDS,
        required=REQUIRED,
        done=page.request.query_params.get("done") == "saved",
        status=status,
        **extra,
    )


@router.get("/settings/seller")
def seller(page: PageDep) -> Response:
    return _page(page)


@router.post("/settings/seller")
def save(page: PageDep, fields: FormDep) -> Response:
    """Every field is sent: an emptied field removes that detail."""
    legal = {k: fields.get(k, "").strip() or None for k in FIELDS}
    try:
        with page.rt.db.write() as s:
            services.update_tenant(s, page.user.tenant_id, name=None, legal=legal)
    except CaisseError as exc:
        kept = {k: fields.get(k, "")[:500] for k in FIELDS}
        return _page(page, status=400, error=exc, param=exc.param, form=kept)
    return redirect("/ui/settings/seller?done=saved")


def step(s: Session, caller: Caller) -> queries.Step:
    """Dashboard checklist: the details an invoice needs are filled in."""
    legal = services.get_tenant(s, caller.tenant_id).legal or {}
    return queries.Step(
        "dash.check.seller", all(legal.get(k) for k in REQUIRED), "/ui/settings/seller"
    )
