"""The dashboard: a getting-started checklist for the environment shown, and a few counts."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from caisse.extranet import queries
from caisse.extranet.pages import PageDep, render
from caisse.tenants.services import Caller

router = APIRouter()

# Capabilities that land later (partner endpoints, Xsolla…) add their own step here.
EXTRA_STEPS: list[Callable[[Session, Caller], queries.Step]] = []


@router.get("/")
def dashboard(page: PageDep) -> Response:
    with page.rt.db.read() as s:
        extra = [step(s, page.caller) for step in EXTRA_STEPS]
        steps = queries.checklist(s, page.caller, extra)
        counts = queries.counts(s, page.caller)
    return render(page, "dashboard.html", steps=steps, counts=counts)
