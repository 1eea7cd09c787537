from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from caisse.tenants import services
from caisse.web.deps import CallerDep, OperatorDep, RuntimeDep
from caisse.web.schemas import TenantIn, TenantPatchIn

router = APIRouter(tags=["tenants"])


@router.post("/v1/tenants", status_code=201, summary="Create a tenant (operator token)")
def create_tenant(body: TenantIn, rt: RuntimeDep, _: OperatorDep) -> dict[str, Any]:
    with rt.db.write() as s:
        tenant, keys = services.create_tenant(s, rt.clock, body.name, body.legal)
        view = services.tenant_view(tenant)
    return {**view, "api_keys": keys}


@router.get("/v1/tenant", summary="The calling tenant")
def get_tenant(rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.read() as s:
        view = services.tenant_view(services.get_tenant(s, caller.tenant_id))
    return {**view, "environment": caller.environment, "livemode": caller.livemode}


@router.patch("/v1/tenant", summary="Update the calling tenant's name and seller details")
def patch_tenant(body: TenantPatchIn, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.write() as s:
        tenant = services.update_tenant(s, caller.tenant_id, name=body.name, legal=body.legal)
        view = services.tenant_view(tenant)
    return {**view, "environment": caller.environment, "livemode": caller.livemode}
