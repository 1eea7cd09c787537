"""``create_app(settings)``: the API, the provider callbacks, and (by default) an in-process
worker, so that ``caisse serve`` alone is a whole caisse on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from caisse import __version__
from caisse.config import Settings
from caisse.extranet.routes import build as build_extranet
from caisse.intake.stripe import ConnectRouting, StripeIngest
from caisse.intake.writer import IngestWriter
from caisse.jobs import registry
from caisse.jobs.worker import Worker
from caisse.metrics import Metrics
from caisse.runtime import Runtime
from caisse.tenants.credentials import StripeSecretCache
from caisse.web import errors
from caisse.web.routes import callbacks, endpoints, events, ops, orders, providers, tenants
from caisse.web.routes import catalog as catalog_routes
from caisse.web.routes import connect as connect_routes
from caisse.web.routes import invoices as invoice_routes
from caisse.web.routes import payments as payment_routes
from caisse.web.routes import xsolla as xsolla_routes
from caisse.xsolla.services import XsollaServices


class _CaisseAPI(FastAPI):
    """FastAPI behind the Stripe ingest middleware: the hot path answers before FastAPI's own
    telemetry, error and body-limit layers run (a sixth of its cost); the middleware answers
    every error itself, never a 500. Everything else goes to FastAPI untouched."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._front = callbacks.StripeIngestMiddleware(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self._front(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    run_worker: bool | None = None,
) -> FastAPI:
    rt = runtime or Runtime.build(settings or Settings.from_env())
    worker_on = rt.settings.in_process_worker if run_worker is None else run_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.writer.start()
        stop = asyncio.Event()
        task = None
        if worker_on:
            skip = () if rt.settings.in_process_render else registry.RENDER_KINDS
            task = asyncio.create_task(Worker(rt, skip_kinds=skip).run(stop))
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            app.state.writer.stop()
            await app.state.xsolla.aclose()

    app = _CaisseAPI(
        title="caisse",
        version=__version__,
        summary="Payment events hub: Stripe and Xsolla in, partners, invoices and mail out.",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.metrics = Metrics()
    app.state.writer = IngestWriter(rt.db, on_commit=rt.wake_workers)
    app.state.stripe_secrets = StripeSecretCache(rt.db, rt.box)
    app.state.stripe_ingest = StripeIngest(
        app.state.stripe_secrets,
        app.state.writer,
        rt.clock,
        connect=ConnectRouting(rt.db, rt.settings.stripe_connect_webhook_secrets),
    )
    app.state.xsolla = XsollaServices(rt)

    errors.install(app)
    for module in (tenants, providers, orders, events, endpoints, ops):
        app.include_router(module.router)
    app.include_router(catalog_routes.router)
    app.include_router(invoice_routes.router)
    app.include_router(xsolla_routes.router)
    app.include_router(payment_routes.router)
    app.include_router(connect_routes.router)
    app.add_route(
        "/callbacks/v1.0/xsolla/{tenant_id}", xsolla_routes.xsolla_callback, methods=["POST"]
    )
    app.add_route(
        "/callbacks/v1.0/stripe/{tenant_id}", callbacks.stripe_callback_other, methods=["POST"]
    )
    app.mount("/ui", build_extranet(app))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema["paths"]["/callbacks/v1.0/stripe/{tenant_id}"] = _STRIPE_CALLBACK_DOC
            schema["paths"]["/callbacks/v1.0/xsolla/{tenant_id}"] = xsolla_routes.CALLBACK_DOC
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


_STRIPE_CALLBACK_DOC: dict[str, Any] = {
    "post": {
        "tags": ["callbacks"],
        "summary": "Stripe webhook receiver (test and live, chosen by the event's livemode)",
        "parameters": [
            {"name": "tenant_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "Stripe-Signature",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": {
            "200": {"description": "Stored durably (or already stored)"},
            "400": {"description": "Bad or missing signature, or not a Stripe event"},
            "404": {"description": "Unknown tenant"},
            "413": {"description": "Body over 1 MiB"},
            "503": {"description": "Storage unavailable; Stripe will retry"},
        },
    }
}
