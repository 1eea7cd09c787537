"""Extranet users: one tenant each, argon2id password hashes."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.clock import Clock
from caisse.errors import Conflict, InvalidRequest
from caisse.storage import models as m
from caisse.tenants.services import get_tenant

_hasher = PasswordHasher()
MIN_PASSWORD = 10
# A fixed hash to verify against when the email is unknown, so timing does not reveal users.
_DUMMY_HASH = _hasher.hash("caisse-dummy-password")


def normalize_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise InvalidRequest("Invalid email address", param="email") from None


def hash_password(password: str) -> str:
    """The argon2id hash of a new password, once it passes the length rule (CLI and
    extranet invitations share it)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"A password has at least {MIN_PASSWORD} characters", param="password")
    return _hasher.hash(password)


def create_user(
    session: Session, clock: Clock, tenant_id: str, email: str, password: str
) -> m.User:
    get_tenant(session, tenant_id)
    address = normalize_email(email)
    password_hash = hash_password(password)
    exists = session.execute(
        select(func.count()).select_from(m.User).where(m.User.email == address)
    ).scalar_one()
    if exists:
        raise Conflict("A user with this email exists", param="email")
    user = m.User(
        id=ids.new_id("user"),
        tenant_id=tenant_id,
        email=address,
        password_hash=password_hash,
        active=True,
        created_at=clock.now(),
    )
    session.add(user)
    session.flush()
    return user


def check_password(session: Session, email: str, password: str) -> m.User | None:
    try:
        address = normalize_email(email)
    except InvalidRequest:
        address = ""
    user = session.execute(
        select(m.User).where(m.User.email == address, m.User.active.is_(True))
    ).scalar_one_or_none()
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user
