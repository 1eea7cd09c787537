"""Form fields checked with the API's own request models (``caisse.web.schemas``), so a form
and the matching ``/v1`` route accept and refuse exactly the same values."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from caisse.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: dict[str, Any]) -> M:
    """``model`` built from ``data``; the first problem as ``InvalidRequest`` (param = field)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(x) for x in first.get("loc", ())]
        param = ".".join(loc) or None
        raise InvalidRequest(
            f"{param}: {first['msg']}" if param else first["msg"], param=param
        ) from None


def lines(value: str, limit: int = 50) -> list[str]:
    """A textarea's non-empty lines (one URL per line), at most ``limit``."""
    return [x.strip() for x in value.splitlines() if x.strip()][:limit]
