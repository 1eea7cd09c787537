"""Xsolla settings of the environment shown (test = Xsolla's sandbox): merchant and project ids,
the API key and webhook secret (shown masked once saved), the Firebase project whose players may
ask for payment tokens, the allowed return URLs, and the webhook URL to paste into Xsolla.

Saved through :func:`caisse.tenants.credentials.put_xsolla`, the service behind
``PUT /v1/providers/xsolla``, after the API's request model: the same validation. Empty secret
fields keep the saved secrets (which never travel back to the browser).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from caisse.errors import CaisseError
from caisse.extranet import queries
from caisse.extranet.forms import lines, validated
from caisse.extranet.pages import FormDep, Page, PageDep, redirect, render
from caisse.tenants import credentials
from caisse.tenants.services import Caller
from caisse.web.schemas import XsollaCredentialsIn

router = APIRouter()

KEPT_FIELDS = ("project_id", "merchant_id", "firebase_project_id", "return_url_allowlist")


def _page(page: Page, *, status: int = 200, **extra: Any) -> Response:
    rt = page.rt
    with rt.db.read() as s:
        row = queries.provider_account(s, page.caller, "xsolla")
        view = credentials.xsolla_view(row, rt.box, rt.settings.public_url) if row else None
    return render(
        page,
        "xsolla.html",
        view=view,
        webhook_url=credentials.webhook_url(rt.settings.public_url, "xsolla", page.user.tenant_id),
        notifications=credentials.XSOLLA_NOTIFICATIONS,
        done=page.request.query_params.get("done") == "saved",
        status=status,
        **extra,
    )


@router.get("/settings/xsolla")
def settings(page: PageDep) -> Response:
    return _page(page)


def _saved_secrets(page: Page) -> dict[str, str]:
    """The saved API key and webhook secret, decrypted server side (to keep them)."""
    with page.rt.db.read() as s:
        row = queries.provider_account(s, page.caller, "xsolla")
    if row is None:
        return {}
    return {k: page.rt.box.decrypt(v) for k, v in (row.secrets or {}).items() if v}


@router.post("/settings/xsolla")
def save(page: PageDep, fields: FormDep) -> Response:
    saved = _saved_secrets(page)
    data: dict[str, Any] = {
        "project_id": fields.get("project_id", "").strip(),
        "api_key": fields.get("api_key", "").strip() or saved.get("api_key", ""),
        "webhook_secret": fields.get("webhook_secret", "").strip()
        or saved.get("webhook_secret", ""),
        "firebase_project_id": fields.get("firebase_project_id", "").strip(),
        "return_url_allowlist": lines(fields.get("return_url_allowlist", "")),
    }
    if fields.get("merchant_id", "").strip():
        data["merchant_id"] = fields["merchant_id"].strip()
    try:
        body = validated(XsollaCredentialsIn, data)
        with page.rt.db.write() as s:
            credentials.put_xsolla(
                s, page.rt.box, page.rt.clock, page.caller, body.model_dump(exclude_none=True)
            )
    except CaisseError as exc:
        kept = {k: fields.get(k, "")[:2000] for k in KEPT_FIELDS}
        return _page(page, status=400, error=exc, param=exc.param, form=kept)
    return redirect("/ui/settings/xsolla?done=saved")


def step(s: Session, caller: Caller) -> queries.Step:
    """Dashboard checklist: Xsolla set up in this environment (for merchants selling there)."""
    done = queries.provider_account(s, caller, "xsolla") is not None
    return queries.Step("dash.check.xsolla", done, "/ui/settings/xsolla")
