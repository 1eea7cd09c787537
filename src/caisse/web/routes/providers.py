from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from caisse.tenants import credentials
from caisse.web.deps import CallerDep, RuntimeDep
from caisse.web.schemas import StripeCredentialsIn, XsollaCredentialsIn

router = APIRouter(tags=["providers"])


@router.put("/v1/providers/stripe", summary="Set the Stripe keys of the key's environment")
def put_stripe(
    body: StripeCredentialsIn, request: Request, rt: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    with rt.db.write() as s:
        row = credentials.put_stripe(s, rt.box, rt.clock, caller, body.model_dump())
        view = credentials.stripe_view(row, rt.box, rt.settings.public_url)
    request.app.state.stripe_secrets.invalidate(caller.tenant_id)
    return view


@router.get("/v1/providers/stripe", summary="The Stripe settings, masked")
def get_stripe(rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.read() as s:
        row = credentials.get_account(s, caller, "stripe")
        return credentials.stripe_view(row, rt.box, rt.settings.public_url)


@router.put(
    "/v1/providers/xsolla",
    summary="Set the Xsolla project of the key's environment (test = Xsolla sandbox)",
)
def put_xsolla(body: XsollaCredentialsIn, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.write() as s:
        row = credentials.put_xsolla(s, rt.box, rt.clock, caller, body.model_dump())
        return credentials.xsolla_view(row, rt.box, rt.settings.public_url)


@router.get("/v1/providers/xsolla", summary="The Xsolla settings, masked")
def get_xsolla(rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.read() as s:
        row = credentials.get_account(s, caller, "xsolla")
        return credentials.xsolla_view(row, rt.box, rt.settings.public_url)
