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
from caisse.errors import CaisseError
from caisse.extranet import auth, i18n, queries
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


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a URL, default ports filled in, or None if it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def _same_origin(request: Request) -> bool:
    """Browsers send ``Origin`` on form posts; when present it must be this site: either the
    ``Host`` the request came to, or the origin of ``CAISSE_PUBLIC_URL`` (behind a reverse
    proxy that rewrites ``Host``, only the latter matches)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    if urlsplit(origin).netloc == request.headers.get("host", ""):
        return True
    given = _origin(origin)
    return given is not None and given == _origin(runtime(request).settings.public_url)


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


async def checked_login_form(request: Request) -> dict[str, str]:
    """The posted fields of a form shown before any session (login, accepting an invitation),
    once the origin and the login CSRF nonce (cookie + field) are checked."""
    fields = await form_fields(request)
    if not _same_origin(request):
        raise auth.CsrfFailed("Cross-origin form")
    auth.check_login_csrf(
        runtime(request).settings, request.cookies.get(auth.LOGIN_COOKIE), fields.get("csrf_token")
    )
    return fields


LoginFormDep = Annotated[dict[str, str], Depends(checked_login_form)]


def safe_next(value: str | None, default: str = "/ui/") -> str:
    """Only our own pages: no scheme, no host, no ``//`` or backslash tricks."""
    if not value or not value.startswith("/ui/") or value.startswith("//") or "\\" in value:
        return default
    if any(c in value for c in "\r\n"):
        return default
    return value


@dataclass(frozen=True, slots=True)
class Shown:
    """A message for a page, and its language when that differs from the page's (the
    template then marks it ``lang``, so screen readers pronounce it right)."""

    text: str
    lang: str | None = None

    def __str__(self) -> str:
        return self.text


def error_text(lang: str, exc: CaisseError) -> Shown:
    """``exc`` in the page's language: the catalogue's ``err.<code>.<param>`` or
    ``err.<code>``, else the service's (English) message, marked as English."""
    if lang == i18n.DEFAULT or exc.message in i18n.CATALOGUES.get(lang, {}).values():
        return Shown(exc.message)  # English, or already translated by the view
    keys = [f"err.{exc.code}.{exc.param}"] if exc.param else []
    for key in (*keys, f"err.{exc.code}"):
        text = i18n.lookup(lang, key)
        if text:
            return Shown(text)
    return Shown(exc.message, i18n.DEFAULT)


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def render_template(
    request: Request, name: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    lang = context.get("lang") or language(request)
    ctx = {"t": i18n.translator(lang), "lang": lang, "path": request.url.path, **context}
    for key in ("error", "detail"):
        if isinstance(ctx.get(key), CaisseError):
            ctx[key] = error_text(lang, ctx[key])
    return HTMLResponse(jinja.get_template(name).render(ctx), status_code=status)


def render(page: Page, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    with page.rt.db.read() as s:
        notices = queries.unread_notices(s, page.caller)
    base = {
        "notices": notices,
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
