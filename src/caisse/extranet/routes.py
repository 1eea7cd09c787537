"""The extranet as an ASGI sub-application, mounted at ``/ui`` by ``caisse.web.app.create_app``.

It shares the parent's runtime (database, secret box, clock), its Stripe secret cache (saving a
signing secret must take effect at once for ingest) and the parent app itself (a test event is
POSTed in-process to the tenant's webhook route). Errors render as HTML pages here; the JSON
error mapping of the API stays in ``caisse.web.errors``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from caisse import errors as e
from caisse.extranet import auth
from caisse.extranet.pages import STATIC, LoginRequired, redirect, render_template
from caisse.extranet.views import (
    account,
    catalog,
    dashboard,
    deliveries,
    events,
    invite,
    invoices,
    notices,
    orders,
    partners,
    seller,
    stripe,
    users,
    xsolla,
)
from caisse.web.errors import status_for

log = logging.getLogger("caisse.extranet")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

ROUTERS = [
    account.router,
    dashboard.router,
    stripe.router,
    orders.router,
    events.router,
    users.router,
    invite.router,
    invoices.router,
    notices.router,
    partners.router,
    deliveries.router,
    xsolla.router,
    catalog.router,
    seller.router,
]

# The later sections' hooks, registered once at import (``build`` may run more than once).
dashboard.EXTRA_STEPS.extend([partners.step, seller.step, xsolla.step])
orders.ORDER_SECTIONS.append(deliveries.order_section)


def _error_page(
    request: Request, status: int, message_key: str, detail: e.CaisseError | None = None
) -> Response:
    return render_template(
        request, "error.html", {"message_key": message_key, "detail": detail}, status=status
    )


def build(parent: FastAPI) -> FastAPI:
    """The extranet app for ``parent`` (whose ``state`` holds runtime and ingest parts)."""
    ui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    ui.state.runtime = parent.state.runtime
    ui.state.stripe_secrets = parent.state.stripe_secrets
    ui.state.parent_app = parent
    ui.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        ui.include_router(router)

    @ui.middleware("http")
    async def headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            if name == "Cache-Control" and request.url.path.startswith("/ui/static/"):
                continue
            response.headers.setdefault(name, value)
        return response

    @ui.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        from urllib.parse import quote

        response = redirect("/ui/login?next=" + quote(exc.next_path, safe="/"))
        auth.clear_cookie(response, auth.SESSION_COOKIE)
        return response

    @ui.exception_handler(auth.CsrfFailed)
    async def _csrf(request: Request, exc: auth.CsrfFailed) -> Response:
        return _error_page(request, 403, "csrf.failed")

    @ui.exception_handler(e.CaisseError)
    async def _caisse(request: Request, exc: e.CaisseError) -> Response:
        status = status_for(exc)
        if status == 404:
            return _error_page(request, 404, "error.not_found")
        return _error_page(request, status, "error.title", exc)

    @ui.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error_page(request, 400, "error.title")

    @ui.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _error_page(request, 404, "error.not_found")
        return _error_page(request, exc.status_code, "error.title")

    @ui.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception(
            "extranet error", extra={"action": "extranet.unhandled", "path": request.url.path}
        )
        return _error_page(request, 500, "error.title")

    return ui
