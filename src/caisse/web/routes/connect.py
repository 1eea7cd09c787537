"""Stripe Connect onboarding: the "Connect with Stripe" address and its OAuth callback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from caisse.errors import InvalidRequest
from caisse.tenants import connect
from caisse.web.deps import CallerDep, RuntimeDep

router = APIRouter(tags=["connect"])


@router.get("/v1/connect/stripe/authorize", summary="The Stripe Connect OAuth address")
def authorize(rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    return connect.authorize(rt, caller)


@router.get(connect.CALLBACK_PATH, summary="Where Stripe sends the merchant back")
def callback(
    rt: RuntimeDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> dict[str, Any]:
    """Authenticated by the signed, single-use ``state`` (the merchant's browser has no key)."""
    if error:
        raise InvalidRequest(f"Stripe Connect was not completed: {error_description or error}")
    if not code or not state:
        raise InvalidRequest("code and state are required", param="code" if not code else "state")
    return connect.complete(rt, code=code, state=state)
