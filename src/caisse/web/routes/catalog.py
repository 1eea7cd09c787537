"""The tenant's catalogue, per environment (the API key's)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from caisse.catalog import services
from caisse.storage import models as m
from caisse.storage.pagination import listing, page
from caisse.web.deps import CallerDep, RuntimeDep
from caisse.web.schemas import CatalogItemIn

router = APIRouter(tags=["catalog"])


@router.put("/v1/catalog/items/{sku}", summary="Create or replace a catalogue item")
def put_item(sku: str, body: CatalogItemIn, rt: RuntimeDep, caller: CallerDep) -> JSONResponse:
    with rt.db.write() as s:
        row, created = services.put_item(
            s,
            rt.clock,
            caller,
            sku,
            name=body.name,
            description=body.description,
            amount=body.price.amount,
            currency=body.price.currency,
            status=body.status,
        )
        view = services.item_view(row)
    return JSONResponse(view, status_code=201 if created else 200)


@router.get("/v1/catalog/items/{sku}", summary="One catalogue item")
def get_item(sku: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.read() as s:
        row = services.get_item(s, caller.tenant_id, caller.environment, sku)
        return services.item_view(row)


@router.get("/v1/catalog/items", summary="Catalogue items, newest first")
def list_items(
    rt: RuntimeDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query()] = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    stmt = select(m.CatalogItem).where(
        m.CatalogItem.tenant_id == caller.tenant_id,
        m.CatalogItem.environment == caller.environment,
    )
    if status:
        stmt = stmt.where(m.CatalogItem.status == status)
    with rt.db.read() as s:
        rows, more = page(
            s,
            stmt,
            m.CatalogItem.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return listing("/v1/catalog/items", [services.item_view(r) for r in rows], more)
