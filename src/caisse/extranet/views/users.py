"""The tenant's extranet users: inviting one more (by e-mail, see ``extranet.invites``) and
switching the others off and on."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from caisse.errors import CaisseError
from caisse.extranet import invite_mail, invites, queries
from caisse.extranet.pages import FormDep, PageDep, redirect, render

router = APIRouter()


def _page(
    page: PageDep,
    *,
    error: CaisseError | None = None,
    email: str = "",
    invited: invites.Invitation | None = None,
    status: int = 200,
) -> Response:
    with page.rt.db.read() as s:
        users = [
            (u, invites.is_pending(u), invites.expires_at(u))
            for u in queries.list_users(s, page.user.tenant_id)
        ]
    return render(
        page,
        "users.html",
        users=users,
        now=page.rt.clock.now(),
        error=error,
        email=email,
        invited=invited,
        invite_link=invite_mail.link(page.rt, invited.token) if invited else None,
        done=page.request.query_params.get("done"),
        status=status,
    )


@router.get("/users")
def users(page: PageDep) -> Response:
    return _page(page)


@router.post("/users")
def invite(page: PageDep, fields: FormDep) -> Response:
    """The invitee belongs to the inviter's tenant, whatever the form says. The link is in this
    answer only (and in the e-mail): it is not stored, so a reload cannot show it again."""
    email = fields.get("email", "")
    try:
        with page.rt.db.write() as s:
            invitation = invites.invite(s, page.rt.clock, page.user.tenant_id, email)
            invite_mail.enqueue(
                s,
                page.rt,
                invitation,
                tenant_name=page.user.tenant_name,
                inviter=page.user.email,
                lang=page.lang,
            )
    except CaisseError as exc:
        return _page(page, error=exc, email=email[:254], status=400)
    page.rt.wake_workers()
    return _page(page, invited=invitation)


@router.post("/users/{user_id}/status")
def set_status(user_id: str, page: PageDep, fields: FormDep) -> Response:
    """Deactivate (or withdraw an invitation) with ``active=0``, reactivate with ``active=1``."""
    active = fields.get("active") == "1"
    try:
        with page.rt.db.write() as s:
            invites.set_active(s, page.user.tenant_id, page.user.user_id, user_id, active)
    except CaisseError as exc:
        if exc.code == "not_found":
            raise
        return _page(page, error=exc, status=400)
    return redirect("/ui/users?done=" + ("activated" if active else "deactivated"))
