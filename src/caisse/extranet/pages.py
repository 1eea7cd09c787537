"""What every extranet page shares: who is signed in (a FastAPI dependency), the CSRF check on
forms, and rendering a Jinja2 template with the user's language and environment."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse

from caisse import money
from caisse.extranet import auth, i18n
from caisse.runtime import Runtime
from caisse.tenants.services import Caller

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


class LoginRequired(Exception):
    """No valid session: the handler answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None or not currency:
        return "—"
    return money.format_amount(int(amount), currency)


def _when(value: dt.datetime | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        value = dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


jinja = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
jinja.filters["money"] = lambda amount, currency: _money(amount, currency)
jinja.filters["when"] = _when
jinja.filters["pretty"] = _pretty
jinja.filters["major"] = lambda amount, currency: str(money.to_decimal(int(amount), currency))


def language(request: Request) -> str:
    return i18n.negotiate(
        request.cookies.get(auth.LANG_COOKIE), request.headers.get("accept-language")
    )


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


@dataclass(frozen=True, slots=True)
class Page:
    """The signed-in context of one request."""

    rt: Runtime
    request: Request
    user: auth.SignedIn
    lang: str
    token: str

    @property
    def caller(self) -> Caller:
        """Tenant and environment: every query of every page filters on both."""
        return Caller(self.user.tenant_id, self.user.environment)

    @property
    def t(self) -> Callable[[str], str]:
        return i18n.translator(self.lang)

    @property
    def test(self) -> bool:
        return self.user.environment == "test"


def current_page(request: Request) -> Page:
    rt = runtime(request)
    token = request.cookies.get(auth.SESSION_COOKIE)
    with rt.db.write() as s:
        user = auth.load_session(s, rt.clock, token)
    if user is None or token is None:
        nxt = request.url.path
        if request.url.query:
            nxt += "?" + request.url.query
        raise LoginRequired(nxt if request.method == "GET" else "/ui/")
    return Page(rt, request, user, language(request), token)


PageDep = Annotated[Page, Depends(current_page)]


def _same_origin(request: Request) -> bool:
    """Browsers send ``Origin`` on form posts; when present it must be this host."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


async def form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def checked_form(request: Request, page: PageDep) -> dict[str, str]:
    """The posted fields, once the CSRF token and origin are checked."""
    fields = await form_fields(request)
    if not _same_origin(request):
        raise auth.CsrfFailed("Cross-origin form")
    auth.check_csrf(page.user.csrf_token, fields.get("csrf_token"))
    return fields


FormDep = Annotated[dict[str, str], Depends(checked_form)]


def safe_next(value: str | None, default: str = "/ui/") -> str:
    """Only our own pages: no scheme, no host, no ``//`` or backslash tricks."""
    if not value or not value.startswith("/ui/") or value.startswith("//") or "\\" in value:
        return default
    if any(c in value for c in "\r\n"):
        return default
    return value


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def render_template(
    request: Request, name: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    lang = context.get("lang") or language(request)
    ctx = {"t": i18n.translator(lang), "lang": lang, "path": request.url.path, **context}
    return HTMLResponse(jinja.get_template(name).render(ctx), status_code=status)


def render(page: Page, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    base = {
        "user": page.user,
        "env": page.user.environment,
        "test": page.test,
        "csrf": page.user.csrf_token,
        "lang": page.lang,
        "nav": NAV,
    }
    return render_template(page.request, name, {**base, **context}, status=status)


# (path, catalogue key): the sections in the header, in order. Sections of capabilities that
# land later add themselves here (see extranet/routes.py).
NAV: list[tuple[str, str]] = [
    ("/ui/", "nav.dashboard"),
    ("/ui/orders", "nav.orders"),
    ("/ui/events", "nav.events"),
    ("/ui/partners", "nav.partners"),
    ("/ui/settings/stripe", "nav.stripe"),
    ("/ui/settings/xsolla", "nav.xsolla"),
    ("/ui/catalog", "nav.catalog"),
    ("/ui/settings/seller", "nav.seller"),
    ("/ui/users", "nav.users"),
]
