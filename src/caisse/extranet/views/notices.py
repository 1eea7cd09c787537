"""Notices caisse left for the merchant (an endpoint it disabled…): shown on every page of the
environment they belong to until someone dismisses them (see ``pages.render``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from caisse.errors import NotFound
from caisse.extranet import queries
from caisse.extranet.pages import FormDep, PageDep, redirect, safe_next

router = APIRouter()


@router.post("/notices/{notice_id}/dismiss")
def dismiss(notice_id: str, page: PageDep, fields: FormDep) -> Response:
    if not notice_id.isdigit() or len(notice_id) > 18:
        raise NotFound("No such notice")
    with page.rt.db.write() as s:
        queries.dismiss_notice(s, page.caller, int(notice_id), page.rt.clock.now())
    return redirect(safe_next(fields.get("next")))
