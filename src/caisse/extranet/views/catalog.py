"""The catalogue of the environment shown: list the SKUs, add one, edit one.

Prices are typed in major units (``4.99``) and stored in minor units by :mod:`caisse.money`;
the item then goes through the API's request model and :func:`caisse.catalog.services.put_item`,
as ``PUT /v1/catalog/items/{sku}`` does. Adding refuses a SKU that exists (editing is explicit).
"""

from __future__ import annotations

from decimal import InvalidOperation
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from caisse import money
from caisse.catalog import services
from caisse.errors import CaisseError, Conflict, InvalidRequest
from caisse.extranet import queries
from caisse.extranet.forms import validated
from caisse.extranet.pages import FormDep, Page, PageDep, redirect, render
from caisse.web.schemas import CatalogItemIn

router = APIRouter()

KEPT_FIELDS = ("sku", "name", "description", "price", "currency", "status")


def _list_page(page: Page, *, status: int = 200, **extra: Any) -> Response:
    q = page.request.query_params
    with page.rt.db.read() as s:
        rows, more = queries.list_catalog(s, page.caller, q.get("starting_after"))
    return render(
        page,
        "catalog.html",
        items=rows,
        more=more,
        first_page=not q.get("starting_after"),
        statuses=services.STATUSES,
        done=q.get("done", "") in ("added", "saved"),
        status=status,
        **extra,
    )


def _item_page(page: Page, sku: str, *, status: int = 200, **extra: Any) -> Response:
    with page.rt.db.read() as s:
        row = services.get_item(s, page.caller.tenant_id, page.caller.environment, sku)
    return render(
        page, "catalog_item.html", item=row, statuses=services.STATUSES, status=status, **extra
    )


@router.get("/catalog")
def items(page: PageDep) -> Response:
    return _list_page(page)


@router.get("/catalog/{sku}")
def item(sku: str, page: PageDep) -> Response:
    return _item_page(page, sku)


def _price(value: str, currency: str) -> int:
    try:
        return money.from_decimal(
            value.strip().replace(",", "."), money.normalize_currency(currency)
        )
    except (InvalidOperation, ValueError, OverflowError):
        raise InvalidRequest("The price is a number such as 4.99", param="price") from None
    except InvalidRequest as exc:
        raise InvalidRequest(exc.message, param=exc.param or "price") from None


def _save(page: Page, sku: str, fields: dict[str, str], *, create: bool) -> None:
    currency = fields.get("currency", "").strip()
    body = validated(
        CatalogItemIn,
        {
            "name": fields.get("name", "").strip(),
            "description": fields.get("description", "").strip() or None,
            "price": {"amount": _price(fields.get("price", ""), currency), "currency": currency},
            "status": fields.get("status", "available"),
        },
    )
    with page.rt.db.write() as s:
        services.check_sku(sku)
        if create and services.find_item(s, page.caller.tenant_id, page.caller.environment, sku):
            raise Conflict(f"The SKU {sku!r} exists already; edit it instead", param="sku")
        services.put_item(
            s,
            page.rt.clock,
            page.caller,
            sku,
            name=body.name,
            description=body.description,
            amount=body.price.amount,
            currency=body.price.currency,
            status=body.status,
        )


def _kept(fields: dict[str, str]) -> dict[str, str]:
    return {k: fields.get(k, "")[:2000] for k in KEPT_FIELDS}


@router.post("/catalog")
def add(page: PageDep, fields: FormDep) -> Response:
    sku = fields.get("sku", "").strip()
    try:
        _save(page, sku, fields, create=True)
    except CaisseError as exc:
        return _list_page(page, status=400, error=exc, param=exc.param, form=_kept(fields))
    return redirect("/ui/catalog?done=added")


@router.post("/catalog/{sku}")
def edit(sku: str, page: PageDep, fields: FormDep) -> Response:
    with page.rt.db.read() as s:  # only an existing SKU of this tenant and environment
        services.get_item(s, page.caller.tenant_id, page.caller.environment, sku)
    try:
        _save(page, sku, fields, create=False)
    except CaisseError as exc:
        return _item_page(page, sku, status=400, error=exc, param=exc.param, form=_kept(fields))
    return redirect("/ui/catalog?done=saved")
