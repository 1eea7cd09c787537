"""Partner endpoints: registration, updates, secret rotation, and their public views.

Policy:

- an endpoint belongs to the caller's tenant *and* environment (a test key registers a staging
  endpoint, a live key a production one); live URLs must be https; every URL passes the SSRF
  check at registration (:func:`caisse.delivery.safety.check_url`, then a best-effort DNS
  look-up, :func:`~caisse.delivery.safety.check_resolves`) and again at connect time;
- ``api_key`` (sent as ``X-API-KEY``) is at least 32 characters, and it and the signing secrets
  are encrypted at rest; both are shown in full once (at creation / rotation), masked after;
- rotation keeps the previous secret signing for a grace period (24 h by default): during it
  every message carries both signatures, newest first.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from caisse import ids
from caisse.crypto import SecretBox, mask
from caisse.delivery import signing
from caisse.delivery.http import sanitize_partner_headers
from caisse.delivery.safety import check_resolves, check_url
from caisse.domain.events import MessageType
from caisse.errors import InvalidRequest, NotFound
from caisse.metrics import ENDPOINTS_DISABLED
from caisse.orders import idempotency
from caisse.storage import models as m
from caisse.tenants.services import Caller

__all__ = [
    "DEFAULT_GRACE",
    "MIN_API_KEY_LENGTH",
    "EndpointChanges",
    "active_secrets",
    "create_endpoint",
    "delete_endpoint",
    "disable",
    "endpoint_view",
    "get_endpoint",
    "rotate_secret",
    "update_endpoint",
]

log = logging.getLogger("caisse.delivery")

DEFAULT_GRACE = dt.timedelta(hours=24)
MAX_GRACE = dt.timedelta(days=7)
MIN_API_KEY_LENGTH = 32
MAX_API_KEY_LENGTH = 512
EVENT_TYPES = frozenset(t.value for t in MessageType)
SCOPE = "POST /v1/endpoints"


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


def _ts(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def check_api_key(api_key: str) -> str:
    """Refuse short keys and anything that could not travel as one clean header value."""
    if len(api_key) < MIN_API_KEY_LENGTH:
        raise InvalidRequest(
            f"api_key must be at least {MIN_API_KEY_LENGTH} characters", param="api_key"
        )
    if len(api_key) > MAX_API_KEY_LENGTH or api_key != api_key.strip():
        raise InvalidRequest("api_key is too long or has surrounding spaces", param="api_key")
    try:
        sanitize_partner_headers({"X-API-KEY": api_key})
    except InvalidRequest:
        raise InvalidRequest(
            "api_key must be printable ASCII without line breaks", param="api_key"
        ) from None
    return api_key


def check_event_types(event_types: Sequence[str] | None) -> list[str]:
    """Known partner message types, deduplicated; an empty list means every type."""
    out: list[str] = []
    for item in event_types or ():
        if item not in EVENT_TYPES:
            known = ", ".join(sorted(EVENT_TYPES))
            raise InvalidRequest(
                f"unknown event type {item[:60]!r}; known: {known}", param="event_types"
            )
        if item not in out:
            out.append(item)
    return out


def active_secrets(box: SecretBox, secrets: list[dict[str, Any]], now: dt.datetime) -> list[str]:
    """Of an endpoint's ``secrets``, those that sign now, newest first (the newest never
    expires)."""
    out: list[str] = []
    for index, entry in enumerate(secrets):
        expires = entry.get("expires_at")
        if index and expires and dt.datetime.fromisoformat(expires) <= now:
            continue
        out.append(box.decrypt(entry["secret"]))
    return out


def endpoint_view(
    row: m.Endpoint, box: SecretBox, now: dt.datetime, *, reveal_secret: bool = False
) -> dict[str, Any]:
    """The one JSON shape of an endpoint; the secret in full only when ``reveal_secret``."""
    current = box.decrypt(row.secrets[0]["secret"]) if row.secrets else None
    grace = [
        e["expires_at"]
        for e in row.secrets[1:]
        if e.get("expires_at") and dt.datetime.fromisoformat(e["expires_at"]) > now
    ]
    return {
        "id": row.id,
        "object": "endpoint",
        "url": row.url,
        "description": row.description,
        "event_types": list(row.event_types or []),
        "livemode": row.environment == "live",
        "status": row.status,
        "disabled_reason": row.disabled_reason,
        "disabled_at": _ts(row.disabled_at),
        "failing_since": _ts(row.failing_since),
        "api_key": row.api_key_hint,
        "secret": current if reveal_secret else mask(current),
        "previous_secrets_expire": [int(dt.datetime.fromisoformat(v).timestamp()) for v in grace],
        "created": int(row.created_at.timestamp()),
        "updated": int(row.updated_at.timestamp()),
    }


def get_endpoint(
    session: Session, caller: Caller, endpoint_id: str, *, lock: bool = False
) -> m.Endpoint:
    stmt = select(m.Endpoint).where(
        m.Endpoint.id == endpoint_id,
        m.Endpoint.tenant_id == caller.tenant_id,
        m.Endpoint.environment == caller.environment,
    )
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No such endpoint: {endpoint_id!r}", param="id")
    return row


def list_endpoints(
    session: Session, caller: Caller, *, newest_first: bool = True
) -> list[m.Endpoint]:
    """Every partner endpoint of the caller's environment (a handful per merchant: no paging;
    the API's paginated list is ``GET /v1/endpoints``)."""
    order = m.Endpoint.id.desc() if newest_first else m.Endpoint.id
    return list(
        session.scalars(
            select(m.Endpoint)
            .where(
                m.Endpoint.tenant_id == caller.tenant_id,
                m.Endpoint.environment == caller.environment,
            )
            .order_by(order)
        )
    )


def create_endpoint(
    session: Session,
    box: SecretBox,
    caller: Caller,
    *,
    url: str,
    api_key: str | None,
    event_types: Sequence[str] | None,
    description: str | None,
    allow_private: bool,
    now: dt.datetime,
    idempotency_key: str | None = None,
    body: Any = None,
) -> tuple[int, dict[str, Any]]:
    """Register an endpoint; the answer carries the signing secret in full (shown once).

    With an ``Idempotency-Key`` a repeated request answers the same endpoint again instead of
    creating a second one (the stored response holds only the id: no secret in clear at rest).
    """
    if idempotency_key is not None:
        claim = idempotency.claim(session, caller, SCOPE, idempotency_key, body, now=now)
        if claim.replay is not None:
            status, stored = claim.replay
            row = get_endpoint(session, caller, str(stored["id"]))
            return status, endpoint_view(row, box, now, reveal_secret=True)
    clean_url = check_url(url, live=caller.environment == "live", allow_private=allow_private)
    check_resolves(clean_url, allow_private=allow_private)
    types = check_event_types(event_types)
    key = check_api_key(api_key) if api_key is not None else None
    secret = signing.new_secret()
    row = m.Endpoint(
        id=ids.new_id("endpoint"),
        tenant_id=caller.tenant_id,
        environment=caller.environment,
        url=clean_url,
        description=description,
        event_types=types,
        api_key=box.encrypt(key) if key else None,
        api_key_hint=mask(key) if key else None,
        secrets=[{"secret": box.encrypt(secret), "created_at": _iso(now), "expires_at": None}],
        status="enabled",
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    if idempotency_key is not None:
        idempotency.finish(session, caller, SCOPE, idempotency_key, 201, {"id": row.id})
    log.info("endpoint created", extra={"action": "endpoint.created", "endpoint_id": row.id})
    return 201, endpoint_view(row, box, now, reveal_secret=True)


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    """A PATCH: only the fields in ``fields`` are applied (``api_key=None`` removes the key)."""

    fields: frozenset[str]
    url: str | None = None
    description: str | None = None
    event_types: Sequence[str] | None = None
    api_key: str | None = None
    enabled: bool | None = None


def update_endpoint(
    session: Session,
    box: SecretBox,
    caller: Caller,
    endpoint_id: str,
    changes: EndpointChanges,
    *,
    allow_private: bool,
    now: dt.datetime,
) -> dict[str, Any]:
    """Apply a PATCH. A new URL applies to queued retries too (they are sent to where the
    partner now says it listens); enabling clears the failure clock."""
    row = get_endpoint(session, caller, endpoint_id, lock=True)
    if "url" in changes.fields:
        if not changes.url:
            raise InvalidRequest("url cannot be empty", param="url")
        row.url = check_url(
            changes.url, live=caller.environment == "live", allow_private=allow_private
        )
        check_resolves(row.url, allow_private=allow_private)
    if "description" in changes.fields:
        row.description = changes.description
    if "event_types" in changes.fields:
        row.event_types = check_event_types(changes.event_types)
    if "api_key" in changes.fields:
        key = check_api_key(changes.api_key) if changes.api_key is not None else None
        row.api_key = box.encrypt(key) if key else None
        row.api_key_hint = mask(key) if key else None
    if changes.enabled is True and row.status != "enabled":
        row.status, row.disabled_reason, row.disabled_at = "enabled", None, None
        row.failing_since = None
        log.info("endpoint enabled", extra={"action": "endpoint.enabled", "endpoint_id": row.id})
    elif changes.enabled is False and row.status != "disabled":
        disable(session, row, "disabled by the merchant", now=now, notify=False, code="merchant")
    row.updated_at = now
    session.flush()
    return endpoint_view(row, box, now)


def disable(
    session: Session,
    row: m.Endpoint,
    reason: str,
    *,
    now: dt.datetime,
    notify: bool = True,
    code: str = "merchant",
) -> None:
    """Disable an endpoint; its pending deliveries fail at once (replayable once re-enabled),
    and, when caisse itself decided it, the merchant gets a notice. The operator sees every
    disable as ``caisse_endpoints_disabled_total{reason=code}`` and a log line with
    ``action=endpoint.disabled`` (``code``: ``gone``, ``failing``, ``merchant``)."""
    row.status, row.disabled_reason, row.disabled_at, row.updated_at = "disabled", reason, now, now
    session.execute(
        update(m.Delivery)
        .where(m.Delivery.endpoint_id == row.id, m.Delivery.status == "pending")
        .values(
            status="failed",
            next_attempt_at=None,
            last_error=f"endpoint disabled: {reason}"[:500],
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    log.warning(
        "endpoint disabled",
        extra={
            "action": "endpoint.disabled",
            "endpoint_id": row.id,
            "tenant_id": row.tenant_id,
            "environment": row.environment,
            "reason": reason,
            "reason_code": code,
        },
    )
    ENDPOINTS_DISABLED.labels(code).inc()
    if notify:
        session.add(
            m.Notice(
                tenant_id=row.tenant_id,
                environment=row.environment,
                action="endpoint.disabled",
                subject_id=row.id,
                message=f"Partner endpoint {row.url} was disabled: {reason}.",
                data={"endpoint_id": row.id, "url": row.url, "reason": reason, "code": code},
                created_at=now,
            )
        )


def delete_endpoint(session: Session, caller: Caller, endpoint_id: str) -> dict[str, Any]:
    """Delete an endpoint with its deliveries and attempt log (queued jobs then find nothing)."""
    row = get_endpoint(session, caller, endpoint_id, lock=True)
    session.delete(row)
    log.info("endpoint deleted", extra={"action": "endpoint.deleted", "endpoint_id": row.id})
    return {"id": endpoint_id, "object": "endpoint", "deleted": True}


def rotate_secret(
    session: Session,
    box: SecretBox,
    caller: Caller,
    endpoint_id: str,
    *,
    grace: dt.timedelta = DEFAULT_GRACE,
    now: dt.datetime,
) -> dict[str, Any]:
    """A new signing secret (returned once, in full); older ones keep signing until
    ``now + grace`` at the latest (a repeated rotation never extends an older one's life)."""
    if not dt.timedelta(0) <= grace <= MAX_GRACE:
        raise InvalidRequest("grace must be between 0 and 7 days", param="grace_seconds")
    row = get_endpoint(session, caller, endpoint_id, lock=True)
    limit = now + grace
    kept: list[dict[str, Any]] = []
    for entry in row.secrets:
        expires = entry.get("expires_at")
        when = dt.datetime.fromisoformat(expires) if expires else limit
        when = min(when, limit)
        if when > now:
            kept.append({**entry, "expires_at": _iso(when)})
    secret = signing.new_secret()
    row.secrets = [
        {"secret": box.encrypt(secret), "created_at": _iso(now), "expires_at": None},
        *kept,
    ][:5]
    row.updated_at = now
    session.flush()
    log.info("endpoint secret rotated", extra={"action": "endpoint.rotated", "endpoint_id": row.id})
    return endpoint_view(row, box, now, reveal_secret=True)
