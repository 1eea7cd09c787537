"""Xsolla Pay Station for Firebase players: the game client's endpoints (Firebase ID token),
the tenant's view of entitlements (API key), and Xsolla's webhook receiver (signature).

The environment of a player request is its ``mode`` (``live`` by default; ``test`` is Xsolla's
sandbox): a body field for the payment token, a query parameter for the reads.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.responses import Response

from caisse import errors as e
from caisse.catalog.services import public_page, public_view
from caisse.providers.xsolla import webhooks as wh
from caisse.storage import models as m
from caisse.storage.pagination import listing, page
from caisse.tenants.credentials import XsollaAccount
from caisse.web.client_ip import client_ip, parse_networks
from caisse.web.deps import CallerDep, RuntimeDep
from caisse.web.errors import error_body, error_response
from caisse.web.schemas import PaymentTokenIn
from caisse.xsolla import entitlements, notifications, players
from caisse.xsolla.services import XsollaServices

log = logging.getLogger("caisse.xsolla")

router = APIRouter(tags=["xsolla"])

MAX_TOKEN_BODY = 16 * 1024
MAX_WEBHOOK_BODY = 1024 * 1024
_NO_STORE = {"Cache-Control": "no-store"}
ModeQuery = Annotated[str | None, Query(description="live (default) or test (Xsolla sandbox)")]


async def read_capped(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes before anything reads it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise e.InvalidRequest("Invalid Content-Length")
        if int(declared) > limit:
            raise e.PayloadTooLarge(f"The body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise e.PayloadTooLarge(f"The body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _services(request: Request) -> XsollaServices:
    services: XsollaServices = request.app.state.xsolla
    return services


async def _player(
    request: Request, tenant_id: str, mode: str | None
) -> tuple[XsollaAccount, players.Player]:
    """The token first (401 before anything about the tenant is revealed), then the account."""
    rt = request.app.state.runtime
    environment = players.check_mode(mode)
    identity = await players.identify(
        _services(request).verifier, request.headers.get("authorization"), environment
    )
    account = await anyio.to_thread.run_sync(players.load_account, rt, tenant_id, environment)
    return account, players.bind(identity, account)


@router.get("/v1/xsolla/{tenant_id}/catalog", summary="The public catalogue for game clients")
def public_catalog(
    tenant_id: str,
    rt: RuntimeDep,
    mode: ModeQuery = None,
    limit: Annotated[int | None, Query()] = None,
    starting_after: Annotated[
        str | None, Query(description="The last SKU of the previous page (SKUs ascend)")
    ] = None,
) -> dict[str, Any]:
    environment = players.check_mode(mode)
    with rt.db.read() as s:
        if s.get(m.Tenant, tenant_id) is None:
            raise e.NotFound("No such tenant", param="tenant_id")
        rows, more = public_page(
            s, tenant_id, environment, limit=limit, starting_after=starting_after
        )
        data = [{"object": "catalog_item", **public_view(r)} for r in rows]
    return listing(f"/v1/xsolla/{tenant_id}/catalog", data, more)


@router.post(
    "/v1/xsolla/{tenant_id}/payment-token",
    status_code=201,
    summary="A Pay Station token for one SKU, for the Firebase player of the ID token",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PaymentTokenIn.model_json_schema()}},
        },
        "parameters": [
            {"name": "Authorization", "in": "header", "required": True,
             "schema": {"type": "string"}, "description": "Bearer <Firebase ID token>"},
        ],
    },
)  # fmt: skip
async def payment_token(
    tenant_id: str,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    raw = await read_capped(request, MAX_TOKEN_BODY)
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        raise e.InvalidRequest("The request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise e.InvalidRequest("The request body is a JSON object")
    mode = doc.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise e.InvalidRequest("mode is 'live' or 'test'", param="mode")
    # The token is checked before anything else in the body: an unauthenticated caller learns
    # nothing about SKUs, and Xsolla is never called for one.
    account, player = await _player(request, tenant_id, mode)
    try:
        body = PaymentTokenIn.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(x) for x in first.get("loc", ())) or None
        raise e.InvalidRequest(str(first.get("msg", "Invalid request")), param=param) from None
    rt = request.app.state.runtime
    peer = request.client.host if request.client else None
    user_ip = client_ip(
        peer, request.headers.get("x-forwarded-for"), parse_networks(rt.settings.trusted_proxies)
    )
    status, view = await players.create_payment_token(
        rt,
        _services(request).client,
        account,
        player,
        players.TokenRequest(body.sku, body.quantity, body.return_url, body.mode),
        user_ip=user_ip,
        idempotency_key=idempotency_key,
    )
    headers = dict(_NO_STORE)
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return JSONResponse(view, status_code=status, headers=headers)


@router.get("/v1/xsolla/{tenant_id}/orders/{order_id}", summary="The player's own order")
async def player_order(
    tenant_id: str, order_id: str, request: Request, mode: ModeQuery = None
) -> JSONResponse:
    account, player = await _player(request, tenant_id, mode)
    rt = request.app.state.runtime

    def read() -> dict[str, Any]:
        with rt.db.read() as s:
            return players.player_order(s, account, player, order_id)

    return JSONResponse(await anyio.to_thread.run_sync(read), headers=_NO_STORE)


@router.get("/v1/xsolla/{tenant_id}/entitlements", summary="What the player was granted")
async def player_entitlements(
    tenant_id: str,
    request: Request,
    mode: ModeQuery = None,
    status: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    starting_after: str | None = None,
) -> JSONResponse:
    account, player = await _player(request, tenant_id, mode)
    rt = request.app.state.runtime
    stmt = entitlements.query(account.tenant_id, account.environment, uid=player.uid, status=status)

    def read() -> dict[str, Any]:
        with rt.db.read() as s:
            rows, more = page(s, stmt, m.Entitlement.id, limit=limit, starting_after=starting_after)
            data = [entitlements.view(r) for r in rows]
        return listing(f"/v1/xsolla/{tenant_id}/entitlements", data, more)

    return JSONResponse(await anyio.to_thread.run_sync(read), headers=_NO_STORE)


@router.get("/v1/entitlements", summary="Entitlements granted to players, newest first")
def tenant_entitlements(
    rt: RuntimeDep,
    caller: CallerDep,
    user_id: str | None = None,
    sku: str | None = None,
    status: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> dict[str, Any]:
    stmt = entitlements.query(
        caller.tenant_id, caller.environment, uid=user_id, sku=sku, status=status
    )
    with rt.db.read() as s:
        rows, more = page(
            s,
            stmt,
            m.Entitlement.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        data = [entitlements.view(r, tenant=True) for r in rows]
    return listing("/v1/entitlements", data, more)


async def xsolla_callback(request: Request) -> Response:
    """``POST /callbacks/v1.0/xsolla/{tenant_id}``: answered after the commit (see
    ``caisse.xsolla.notifications``): 204, or 400 with Xsolla's error codes."""
    app = request.app
    metrics = app.state.metrics
    tenant_id = request.path_params["tenant_id"]
    try:
        raw = await read_capped(request, MAX_WEBHOOK_BODY)
        verdict = await anyio.to_thread.run_sync(
            functools.partial(
                notifications.handle,
                app.state.runtime,
                tenant_id,
                raw,
                request.headers.get("authorization"),
                headers=dict(request.headers),
                remote_addr=request.client.host if request.client else None,
            )
        )
    except e.CaisseError as exc:
        metrics.inbound.labels("xsolla", exc.code).inc()
        return error_response(exc)
    except Exception:  # a 5xx makes Xsolla retry later; details only in the log
        log.exception("xsolla webhook failed", extra={"action": "xsolla.webhook.unexpected"})
        metrics.inbound.labels("xsolla", "error").inc()
        return JSONResponse(error_body("internal_error", "Try again later"), status_code=500)
    metrics.inbound.labels("xsolla", verdict.code or "ok").inc()
    if verdict.ok:
        return Response(status_code=204)
    assert verdict.code is not None
    return JSONResponse(wh.error_body(verdict.code, verdict.message), status_code=400)


CALLBACK_DOC: dict[str, Any] = {
    "post": {
        "tags": ["callbacks"],
        "summary": "Xsolla webhook receiver (sandbox = test, or live: the notification's marker)",
        "description": "Answered in the request, after the commit; see docs/xsolla.md.",
        "parameters": [
            {"name": "tenant_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "Authorization",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "pattern": "^Signature [0-9a-fA-F]{40}$"},
                "description": "Signature <sha1(raw body + webhook secret)>",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": {
            "204": {"description": "Applied, recorded, or already applied"},
            "400": {
                "description": "INVALID_SIGNATURE, INVALID_PARAMETER, INVALID_USER, "
                "INCORRECT_AMOUNT or INCORRECT_INVOICE (Xsolla does not retry)"
            },
            "404": {"description": "Unknown tenant"},
            "413": {"description": "Body over 1 MiB"},
            "500": {"description": "Transient fault; Xsolla retries"},
        },
    }
}
