"""The tenant's extranet users, and inviting one more."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from caisse.errors import CaisseError
from caisse.extranet import queries
from caisse.extranet.pages import FormDep, PageDep, redirect, render
from caisse.tenants.users import create_user

router = APIRouter()


def _page(
    page: PageDep, *, error: str | None = None, email: str = "", status: int = 200
) -> Response:
    with page.rt.db.read() as s:
        users = queries.list_users(s, page.user.tenant_id)
    done = page.request.query_params.get("done") == "invited"
    return render(
        page, "users.html", users=users, error=error, email=email, done=done, status=status
    )


@router.get("/users")
def users(page: PageDep) -> Response:
    return _page(page)


@router.post("/users")
def invite(page: PageDep, fields: FormDep) -> Response:
    """The new user belongs to the inviter's tenant, whatever the form says."""
    email = fields.get("email", "")
    try:
        with page.rt.db.write() as s:
            create_user(s, page.rt.clock, page.user.tenant_id, email, fields.get("password", ""))
    except CaisseError as exc:
        return _page(page, error=exc.message, email=email[:254], status=400)
    return redirect("/ui/users?done=invited")
