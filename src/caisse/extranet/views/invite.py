"""The invitee's side of an invitation: ``/ui/invite/{token}``, where they choose their own
password and are signed in. No session yet, so the form is protected like the login form
(signed double-submit token and origin check)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from caisse.errors import CaisseError, NotFound
from caisse.extranet import auth, invites
from caisse.extranet.pages import (
    LoginFormDep,
    redirect,
    render_template,
    runtime,
)

router = APIRouter()


def _form(
    request: Request, token: str, *, error: CaisseError | None = None, status: int = 200
) -> Response:
    rt = runtime(request)
    with rt.db.read() as s:
        user = invites.find(s, rt.clock, token)
    if user is None:
        raise NotFound("This invitation link is not valid any more")
    nonce = request.cookies.get(auth.LOGIN_COOKIE) or auth.new_login_nonce()
    response = render_template(
        request,
        "invite.html",
        {
            "csrf": auth.login_csrf_token(rt.settings, nonce),
            "email": user.email,
            "token": token,
            "error": error,
        },
        status=status,
    )
    auth.set_cookie(response, rt.settings, auth.LOGIN_COOKIE, nonce, max_age=3600)
    return response


@router.get("/invite/{token}")
def invitation(token: str, request: Request) -> Response:
    return _form(request, token)


@router.post("/invite/{token}")
def accept(token: str, request: Request, fields: LoginFormDep) -> Response:
    rt = runtime(request)
    try:
        with rt.db.write() as s:
            user = invites.accept(
                s,
                rt.clock,
                token,
                fields.get("password", "")[:1024],
                fields.get("confirm", "")[:1024],
            )
            session_token = auth.start_session(s, rt.clock, user)
    except NotFound:
        raise
    except CaisseError as exc:
        return _form(request, token, error=exc, status=400)
    response = redirect("/ui/")
    max_age = int(auth.LIFETIME.total_seconds())
    auth.set_cookie(response, rt.settings, auth.SESSION_COOKIE, session_token, max_age=max_age)
    auth.clear_cookie(response, auth.LOGIN_COOKIE)
    return response
