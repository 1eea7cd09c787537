from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from caisse import __version__
from caisse.storage import jobs as jobstore
from caisse.web.deps import RuntimeDep

log = logging.getLogger("caisse.web")
router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", summary="The database answers", response_model=None)
def readyz(rt: RuntimeDep) -> JSONResponse | dict[str, Any]:
    if not rt.db.ping():
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    return {"status": "ready", "database": "up"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request, rt: RuntimeDep) -> Response:
    m = request.app.state.metrics
    try:
        with rt.db.read() as s:
            for status, n in jobstore.counts(s).items():
                m.jobs.labels(status).set(n)
    except Exception:  # metrics must answer even when the database does not
        log.warning("job counts unavailable", extra={"action": "metrics.jobs_unavailable"})
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
