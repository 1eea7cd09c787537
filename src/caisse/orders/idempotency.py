"""``Idempotency-Key`` for creating calls, as Stripe does it.

The key is claimed by inserting a row (unique per tenant, environment, route and key) before any
work; the finished response is stored on it and replayed for the same key and the same body.
The same key with a different body is refused (409). A claim left behind by a crash is resumed
after ``STALE_AFTER`` by the next request with that key, so a crash never wedges a key; one
whose provider call ended without a known outcome is marked ``interrupted`` and resumed at once.

A stored response can hold secrets shown once (a PaymentIntent's ``client_secret``), so callers
given the runtime's ``SecretBox`` store it sealed: the whole JSON answer encrypted under the
master key, as ``{"sealed": <token>}``. The replay opens it, byte for byte the first answer.
Rows written in clear (before sealing, or by callers storing only ids) still replay.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from caisse.crypto import SecretBox
from caisse.errors import CaisseError, IdempotencyConflict, InvalidRequest
from caisse.storage import models as m
from caisse.storage.sql import insert_ignore
from caisse.tenants.services import Caller

STALE_AFTER = dt.timedelta(seconds=30)
MAX_KEY_LENGTH = 255
SEALED = "sealed"
INTERRUPTED = "interrupted"
"""Set in a claim's progress when its work stopped on an unknown provider outcome: the next
request with the key resumes it at once instead of waiting ``STALE_AFTER``."""


@dataclass(frozen=True, slots=True)
class Claim:
    """``replay`` is a finished response to send again; ``resume`` is the work a crashed
    request left (e.g. the order id it had created); both None means: do the work."""

    key: str
    replay: tuple[int, dict[str, Any]] | None = None
    resume: dict[str, Any] | None = None


def request_hash(body: Any) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def _seal(box: SecretBox | None, payload: dict[str, Any]) -> dict[str, Any]:
    """What is stored for ``payload``: sealed under the master key when a box is given."""
    if box is None:
        return payload
    return {SEALED: box.encrypt(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))}


def _unseal(box: SecretBox | None, stored: dict[str, Any]) -> dict[str, Any]:
    """The payload of a stored value, sealed or (legacy, ids only) in clear."""
    token = stored.get(SEALED)
    if len(stored) != 1 or not isinstance(token, str):
        return stored
    if box is None:
        raise CaisseError("A sealed idempotent response needs the master key to be replayed")
    opened: dict[str, Any] = json.loads(box.decrypt(token))
    return opened


def claim(
    session: Session,
    caller: Caller,
    scope: str,
    key: str,
    body: Any,
    *,
    now: dt.datetime,
    box: SecretBox | None = None,
) -> Claim:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 255 printable characters", param="Idempotency-Key"
        )
    digest = request_hash(body)
    session.execute(
        insert_ignore(
            session,
            m.IdempotencyKey.__table__,  # type: ignore[arg-type]
            conflict=["tenant_id", "environment", "scope", "key"],
        ),
        [
            {
                "tenant_id": caller.tenant_id,
                "environment": caller.environment,
                "scope": scope,
                "key": key,
                "request_hash": digest,
                "status_code": None,
                "response": None,
                "created_at": now,
            }
        ],
    )
    row = session.execute(
        select(m.IdempotencyKey)
        .where(
            m.IdempotencyKey.tenant_id == caller.tenant_id,
            m.IdempotencyKey.environment == caller.environment,
            m.IdempotencyKey.scope == scope,
            m.IdempotencyKey.key == key,
        )
        .with_for_update()
    ).scalar_one()
    if row.request_hash != digest:
        raise IdempotencyConflict(
            "Keys for idempotent requests can only be used with the same parameters they were "
            "first used with",
            param="Idempotency-Key",
        )
    if row.status_code is not None and row.response is not None:
        return Claim(key, replay=(row.status_code, _unseal(box, row.response)))
    if row.response is not None:  # in progress, interrupted, or left by a crash
        progress = _unseal(box, row.response)
        if not progress.get(INTERRUPTED) and now - row.created_at < STALE_AFTER:
            raise IdempotencyConflict(
                "A request with this Idempotency-Key is in progress", param="Idempotency-Key"
            )
        return Claim(key, resume=progress)
    return Claim(key)


def note_progress(
    session: Session,
    caller: Caller,
    scope: str,
    key: str,
    progress: dict[str, Any],
    *,
    box: SecretBox | None = None,
) -> None:
    row = _row(session, caller, scope, key)
    row.response = _seal(box, progress)


def renew(session: Session, caller: Caller, scope: str, key: str, *, now: dt.datetime) -> None:
    """Take over a claim being resumed: in progress again, for this request, from ``now``. The
    row is locked by :func:`claim` in the caller's transaction, so only one retry wins."""
    _row(session, caller, scope, key).created_at = now


def finish(
    session: Session,
    caller: Caller,
    scope: str,
    key: str,
    status_code: int,
    response: dict[str, Any],
    *,
    box: SecretBox | None = None,
) -> None:
    """Store the answer to replay; pass ``box`` whenever it may hold a secret or personal data."""
    row = _row(session, caller, scope, key)
    row.status_code = status_code
    row.response = _seal(box, response)


def release(session: Session, caller: Caller, scope: str, key: str) -> None:
    """Forget a claim whose work failed before any effect, so the caller may retry the key."""
    session.execute(
        delete(m.IdempotencyKey).where(
            m.IdempotencyKey.tenant_id == caller.tenant_id,
            m.IdempotencyKey.environment == caller.environment,
            m.IdempotencyKey.scope == scope,
            m.IdempotencyKey.key == key,
        )
    )


def _row(session: Session, caller: Caller, scope: str, key: str) -> m.IdempotencyKey:
    return session.execute(
        select(m.IdempotencyKey).where(
            m.IdempotencyKey.tenant_id == caller.tenant_id,
            m.IdempotencyKey.environment == caller.environment,
            m.IdempotencyKey.scope == scope,
            m.IdempotencyKey.key == key,
        )
    ).scalar_one()
