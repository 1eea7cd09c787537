"""Inviting a colleague into the extranet, and switching users off and on.

Policy:

* An invitation is a ``users`` row that cannot sign in yet: ``active`` is false and, in place of
  an argon2 hash, ``password_hash`` holds ``invite:v1:<sha256 of the token>:<expiry>`` (the way
  Django marks an unusable password). argon2 refuses to verify such a value, so no password
  opens it; the token itself (256 random bits) is shown once to the inviter and mailed to the
  invitee, never stored.
* The link ``/ui/invite/<token>`` works once, for :data:`TTL`: setting a password replaces the
  marker with the argon2 hash (same rules as ``caisse user create``) and activates the user.
  Inviting a pending address again issues a fresh token, which kills the previous link.
* A user can deactivate and reactivate the other users of their tenant, never themself (so a
  tenant always keeps someone who can sign in); deactivating ends that user's sessions.
  Withdrawing a pending invitation deletes the row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.clock import Clock
from caisse.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from caisse.storage import models as m
from caisse.tenants.users import hash_password, normalize_email

TTL = dt.timedelta(hours=72)
_PREFIX = "invite:v1:"


@dataclass(frozen=True, slots=True)
class Invitation:
    """What the inviter is shown once: who, the secret token, until when it works."""

    user_id: str
    email: str
    token: str
    expires_at: dt.datetime


def token_hash(token: str) -> str:
    """What is kept of a token (also the invitation e-mail job's key)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _marker(token: str, expires_at: dt.datetime) -> str:
    return f"{_PREFIX}{token_hash(token)}:{int(expires_at.timestamp())}"


def is_pending(user: m.User) -> bool:
    """Invited, and no password chosen yet."""
    return user.password_hash.startswith(_PREFIX)


def expires_at(user: m.User) -> dt.datetime | None:
    """When a pending invitation stops working (None for a user who has a password)."""
    if not is_pending(user):
        return None
    return dt.datetime.fromtimestamp(int(user.password_hash.rsplit(":", 1)[1]), tz=dt.UTC)


def invite(session: Session, clock: Clock, tenant_id: str, email: str) -> Invitation:
    """A new pending user of ``tenant_id`` (or a fresh link for one still pending)."""
    address = normalize_email(email)
    token = secrets.token_urlsafe(32)
    expiry = clock.now() + TTL
    user = session.execute(select(m.User).where(m.User.email == address)).scalar_one_or_none()
    if user is not None and not (user.tenant_id == tenant_id and is_pending(user)):
        raise Conflict("A user with this email exists", param="email")
    if user is None:
        user = m.User(
            id=ids.new_id("user"),
            tenant_id=tenant_id,
            email=address,
            active=False,
            created_at=clock.now(),
        )
        session.add(user)
    user.password_hash = _marker(token, expiry)
    session.flush()
    return Invitation(user.id, address, token, expiry)


def find(session: Session, clock: Clock, token: str) -> m.User | None:
    """The pending user a link belongs to, if it is still valid."""
    if not token or len(token) > 100:
        return None
    digest = token_hash(token)
    user = session.execute(
        select(m.User).where(m.User.password_hash.startswith(f"{_PREFIX}{digest}:"))
    ).scalar_one_or_none()
    if user is None or not hmac.compare_digest(user.password_hash.split(":")[2], digest):
        return None
    expiry = expires_at(user)
    if expiry is None or expiry <= clock.now():
        return None
    return user


def accept(session: Session, clock: Clock, token: str, password: str, confirm: str) -> m.User:
    """Set the invitee's own password: the link is spent and the user can sign in."""
    user = find(session, clock, token)
    if user is None:
        raise NotFound("This invitation link is not valid any more")
    if password != confirm:
        raise InvalidRequest("The two passwords differ", param="confirm")
    user.password_hash = hash_password(password)
    user.active = True
    return user


def set_active(session: Session, tenant_id: str, actor_id: str, user_id: str, active: bool) -> None:
    """Switch another user of the same tenant off or on (or withdraw their invitation)."""
    user = session.get(m.User, user_id)
    if user is None or user.tenant_id != tenant_id:
        raise NotFound("No such user")
    if user.id == actor_id:
        raise PermissionDenied("You cannot deactivate yourself", param="user")
    if is_pending(user):
        if not active:
            session.delete(user)
        return
    user.active = active
    if not active:
        session.execute(delete(m.ExtranetSession).where(m.ExtranetSession.user_id == user.id))
