"""The one place that maps errors to HTTP: ``{"error": {"code", "message", "param"?}}``.

Unknown exceptions become a 500 with a generic message and a request id to quote; the detail
goes to the log only, never to the caller.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from caisse import errors as e
from caisse.auth.firebase import KeysUnavailable
from caisse.providers.xsolla.client import XsollaThrottled

log = logging.getLogger("caisse.web")

STATUS: list[tuple[type[e.CaisseError], int]] = [
    (e.PayloadTooLarge, 413),
    (e.InvalidRequest, 400),
    (e.AuthenticationError, 401),
    (e.PermissionDenied, 403),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.SignatureInvalid, 400),
    # Transient: the caller may retry after Retry-After (Google's certificates, Xsolla's 429).
    (KeysUnavailable, 503),
    (XsollaThrottled, 503),
    (e.ProviderRejected, 402),
    (e.ProviderTimeout, 504),
    (e.ProviderUnavailable, 502),
    (e.ProviderError, 502),
    (e.UnsafeTarget, 400),
    (e.DeliveryError, 502),
    (e.StorageUnavailable, 503),
]


def status_for(exc: e.CaisseError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if param:
        err["param"] = param
    return {"error": err}


def error_response(exc: e.CaisseError) -> JSONResponse:
    status = status_for(exc)
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after or 5)} if status == 503 else None
    if isinstance(exc, e.AuthenticationError):
        headers = {"WWW-Authenticate": 'Bearer realm="caisse"'}
    return JSONResponse(
        error_body(exc.code, exc.message, exc.param), status_code=status, headers=headers
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(e.CaisseError)
    async def _caisse(_: Request, exc: e.CaisseError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path")]
        param = ".".join(loc) or None
        msg = str(first.get("msg", "Invalid request"))
        if first.get("type") == "json_invalid":
            msg, param = "The request body is not valid JSON", None
        return JSONResponse(error_body("invalid_request", msg, param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "authentication_failed"}.get(
            exc.status_code, "http_error"
        )
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        return JSONResponse(
            error_body(code, message),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from caisse.storage.db import is_outage

        if is_outage(exc):
            return error_response(e.StorageUnavailable("The database is unavailable"))
        log.exception(
            "unhandled error", extra={"action": "web.unhandled", "path": request.url.path}
        )
        return JSONResponse(
            error_body("internal_error", "An internal error occurred"), status_code=500
        )
