"""Sign in, sign out, the test/live switch and the language choice."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from caisse.extranet import auth, i18n
from caisse.extranet.pages import (
    NAV,
    FormDep,
    LoginFormDep,
    LoginRequired,
    PageDep,
    current_page,
    language,
    redirect,
    render_template,
    runtime,
    safe_next,
)
from caisse.tenants.users import check_password

router = APIRouter()


def _login_page(
    request: Request, *, error: str | None = None, status: int = 200, email: str = ""
) -> Response:
    rt = runtime(request)
    nonce = request.cookies.get(auth.LOGIN_COOKIE) or auth.new_login_nonce()
    response = render_template(
        request,
        "login.html",
        {
            "csrf": auth.login_csrf_token(rt.settings, nonce),
            "next": safe_next(request.query_params.get("next")),
            "error": error,
            "email": email,
            "signed_out": request.query_params.get("signed_out") == "1",
        },
        status=status,
    )
    auth.set_cookie(response, rt.settings, auth.LOGIN_COOKIE, nonce, max_age=3600)
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    try:
        current_page(request)
    except LoginRequired:
        return _login_page(request)
    return redirect("/ui/")


@router.post("/login")
def login_submit(request: Request, fields: LoginFormDep) -> Response:
    rt = runtime(request)
    email = fields.get("email", "").strip().lower()[:254]
    password = fields.get("password", "")[:1024]
    addr = request.client.host if request.client else "unknown"
    t = i18n.translator(language(request))
    with rt.db.read() as s:
        blocked = auth.throttled(s, rt.clock, email, addr)
    if blocked:
        return _login_page(request, error=t("auth.throttled"), status=429, email=email)
    with rt.db.write() as s:
        user = check_password(s, email, password) if email and password else None
        if user is None:
            auth.record_failure(s, rt.clock, email, addr)
            token = None
        else:
            auth.clear_failures(s, email)
            token = auth.start_session(s, rt.clock, user)
    if token is None:
        return _login_page(request, error=t("auth.invalid"), status=401, email=email)
    response = redirect(safe_next(fields.get("next")))
    max_age = int(auth.LIFETIME.total_seconds())
    auth.set_cookie(response, rt.settings, auth.SESSION_COOKIE, token, max_age=max_age)
    auth.clear_cookie(response, auth.LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(page: PageDep, fields: FormDep) -> Response:
    with page.rt.db.write() as s:
        auth.end_session(s, page.token)
    response = redirect("/ui/login?signed_out=1")
    auth.clear_cookie(response, auth.SESSION_COOKIE)
    return response


@router.post("/mode")
def switch_mode(page: PageDep, fields: FormDep) -> Response:
    """Test ⇄ live, like Stripe's toggle. Back to the section, not to a record of the other
    environment (which would not be found there)."""
    env = "test" if fields.get("environment") == "test" else "live"
    with page.rt.db.write() as s:
        auth.set_environment(s, page.token, env)
    nxt = safe_next(fields.get("next")).split("?")[0]
    sections = [p for p, _ in NAV if p != "/ui/" and (nxt == p or nxt.startswith(p + "/"))]
    return redirect(max(sections, key=len) if sections else "/ui/")


@router.get("/lang/{code}")
def switch_language(code: str, request: Request) -> Response:
    """A preference only (no data changes), hence a plain link rather than a form."""
    response = redirect(safe_next(request.query_params.get("next")))
    if code in i18n.LANGUAGES:
        rt = runtime(request)
        auth.set_cookie(response, rt.settings, auth.LANG_COOKIE, code, max_age=365 * 86400)
    return response
