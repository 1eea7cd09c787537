"""Merchant actions on an order's payment: refunds, capture and cancel of manual captures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from caisse.orders import actions
from caisse.web.deps import CallerDep, RuntimeDep
from caisse.web.schemas import CaptureIn, RefundIn

router = APIRouter(tags=["orders"])

KeyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]


def _answer(status: int, view: dict[str, object], key: str | None) -> JSONResponse:
    headers = {"Idempotency-Key": key} if key else None
    return JSONResponse(view, status_code=status, headers=headers)


@router.post("/v1/orders/{order_id}/refunds", summary="Refund all or part of a paid order")
def refund_order(
    order_id: str,
    rt: RuntimeDep,
    caller: CallerDep,
    body: RefundIn | None = None,
    idempotency_key: KeyHeader = None,
) -> JSONResponse:
    body = body or RefundIn()
    status, view = actions.refund(
        rt, caller, order_id, amount=body.amount, reason=body.reason, key=idempotency_key
    )
    return _answer(status, view, idempotency_key)


@router.post("/v1/orders/{order_id}/capture", summary="Capture an authorised payment")
def capture_order(
    order_id: str,
    rt: RuntimeDep,
    caller: CallerDep,
    body: CaptureIn | None = None,
    idempotency_key: KeyHeader = None,
) -> JSONResponse:
    body = body or CaptureIn()
    status, view = actions.capture(rt, caller, order_id, amount=body.amount, key=idempotency_key)
    return _answer(status, view, idempotency_key)


@router.post("/v1/orders/{order_id}/cancel", summary="Cancel an unpaid order")
def cancel_order(
    order_id: str, rt: RuntimeDep, caller: CallerDep, idempotency_key: KeyHeader = None
) -> JSONResponse:
    status, view = actions.cancel(rt, caller, order_id, key=idempotency_key)
    return _answer(status, view, idempotency_key)
