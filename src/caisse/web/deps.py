"""Request dependencies: the runtime, and who is calling."""

from __future__ import annotations

import base64
import secrets
from typing import Annotated

from fastapi import Depends, Request

from caisse.errors import AuthenticationError
from caisse.runtime import Runtime
from caisse.tenants.services import Caller, authenticate


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":  # Stripe accepts the key as the Basic user name
        try:
            user = base64.b64decode(value.strip(), validate=True).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None
    return None


def get_caller(request: Request, rt: RuntimeDep) -> Caller:
    key = _bearer(request)
    with rt.db.read() as s:
        caller = authenticate(s, key)
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_operator(request: Request, rt: RuntimeDep) -> None:
    token = _bearer(request)
    expected = rt.settings.admin_token.reveal()
    if not token or not secrets.compare_digest(token.encode(), expected.encode()):
        raise AuthenticationError("Invalid operator token")


OperatorDep = Annotated[None, Depends(require_operator)]
