"""Provider webhook receivers.

The Stripe receiver is the hot path, so it is a pure ASGI middleware in front of the whole
FastAPI application (``web.app``) that answers ``POST /callbacks/v1.0/stripe/{tenant_id}`` before
FastAPI's telemetry, error, routing, dependency and validation machinery run (everything else
passes through untouched). It reads the raw body itself (the signature is over the exact
bytes), caps it at 1 MiB, and answers 200 only once the event is durably stored. A plain route
is also registered so other methods get a 405 and the OpenAPI document describes the endpoint.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caisse import errors as e
from caisse.intake.stripe import KEPT_HEADERS, MAX_BODY
from caisse.web.errors import error_body, status_for

log = logging.getLogger("caisse.intake")

STRIPE_PREFIX = "/callbacks/v1.0/stripe/"
_OK = b'{"received":true}'
_JSON = [(b"content-type", b"application/json")]
_OK_HEADERS = [*_JSON, (b"content-length", str(len(_OK)).encode())]
# ASGI servers give header names in lower case.
_READ_HEADERS = frozenset(h.encode() for h in (*KEPT_HEADERS, "content-length"))


class StripeIngestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._stored: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(STRIPE_PREFIX)
        ):
            tenant_id = scope["path"][len(STRIPE_PREFIX) :]
            if tenant_id and "/" not in tenant_id:
                await self._handle(scope, receive, send, tenant_id)
                return
        await self.app(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, tenant_id: str) -> None:
        start = time.perf_counter()
        state = scope["app"].state
        metrics = state.metrics
        if self._stored is None:
            self._stored = metrics.inbound.labels("stripe", "stored")
            self._latency = metrics.ingest_seconds.labels("stripe")
        headers: dict[str, str] = {}  # only those kept on the row, and the two read here
        for key, value in scope["headers"]:
            if key in _READ_HEADERS:
                headers[key.decode("latin-1")] = value.decode("latin-1")
        try:
            header = headers.get("stripe-signature")
            if not header:
                raise e.SignatureInvalid("The Stripe-Signature header could not be verified.")
            body = await _read_body(receive, headers.pop("content-length", None))
            client = scope.get("client")
            await state.stripe_ingest.receive(
                tenant_id,
                body,
                header,
                headers=headers,
                remote_addr=client[0] if client else None,
            )
        except e.CaisseError as exc:
            metrics.inbound.labels("stripe", exc.code).inc()
            status = status_for(exc)
            extra = [(b"retry-after", b"5")] if status == 503 else []
            await _answer(
                send,
                status,
                json.dumps(error_body(exc.code, exc.message, exc.param)).encode(),
                extra,
            )
            return
        except Exception:  # never a 500 with details to a provider; log and ask for a retry
            log.exception("stripe ingest failed", extra={"action": "intake.unexpected"})
            metrics.inbound.labels("stripe", "error").inc()
            await _answer(
                send,
                503,
                json.dumps(error_body("storage_unavailable", "Try again later")).encode(),
                [(b"retry-after", b"5")],
            )
            return
        self._stored.inc()
        self._latency.observe(time.perf_counter() - start)
        await send({"type": "http.response.start", "status": 200, "headers": _OK_HEADERS})
        await send({"type": "http.response.body", "body": _OK})


async def _read_body(receive: Receive, declared: str | None) -> bytes:
    if declared is not None:
        if not declared.isdigit():
            raise e.InvalidRequest("Invalid Content-Length")
        if int(declared) > MAX_BODY:
            raise e.PayloadTooLarge(f"The body is larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise e.InvalidRequest("The client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise e.PayloadTooLarge(f"The body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON, (b"content-length", str(len(body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def stripe_callback_other(request: Request) -> Response:
    """Reached only by what the middleware lets through (e.g. an empty tenant id)."""
    return Response(
        json.dumps(error_body("not_found", "No such tenant")).encode(),
        status_code=404,
        media_type="application/json",
    )
