"""Extranet sign-in: server-side sessions, CSRF tokens and login throttling.

Policy:

* The session cookie carries 256 random bits; the database keeps only their SHA-256, so a leaked
  database does not yield live sessions, and signing out deletes the row (the cookie is dead at
  once, in every process). Sessions end after :data:`IDLE` without a request, and after
  :data:`LIFETIME` in any case.
* Cookies are ``HttpOnly``, ``SameSite=Lax``, scoped to ``/ui``, and ``Secure`` unless the public
  URL names this machine (``localhost``, ``*.localhost``, a loopback address): anywhere else the
  extranet must be served over https, even if ``CAISSE_PUBLIC_URL`` was written with http.
* Every form carries ``csrf_token``: the session's random token once signed in; before that
  (the login form), an HMAC of a random nonce kept in a cookie, keyed by a secret derived from
  the master key (double-submit, signed). A cross-site page can read neither.
* Throttling: at most :data:`MAX_FAILURES_PER_EMAIL` failed sign-ins per email and
  :data:`MAX_FAILURES_PER_ADDR` per client address in :data:`WINDOW`; while over the limit the
  password is not even checked. Failures are rows, so the limit holds across processes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from caisse.clock import Clock
from caisse.config import Settings
from caisse.errors import PermissionDenied
from caisse.storage import models as m

SESSION_COOKIE = "caisse_session"
LOGIN_COOKIE = "caisse_login"
LANG_COOKIE = "caisse_lang"
COOKIE_PATH = "/ui"

IDLE = dt.timedelta(hours=2)
LIFETIME = dt.timedelta(hours=12)
TOUCH_EVERY = dt.timedelta(minutes=1)

WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_ADDR = 30

DEFAULT_ENVIRONMENT = "live"


class CsrfFailed(PermissionDenied):
    """A form came without the right ``csrf_token`` (or from another origin)."""

    code = "csrf_failed"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who is behind a request, as far as every extranet page is concerned."""

    user_id: str
    email: str
    tenant_id: str
    tenant_name: str
    environment: str
    csrf_token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def session_secret(settings: Settings) -> bytes:
    """A key for the extranet alone, derived from the master key (so no new setting)."""
    master = settings.master_keys[0].reveal().encode("utf-8")
    return hmac.new(master, b"caisse.extranet.session.v1", hashlib.sha256).digest()


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine, the one place plain http is acceptable."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, *, max_age: int
) -> None:
    """HttpOnly, SameSite=Lax, path ``/ui``; Secure everywhere but on localhost."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://") or not is_loopback(settings.public_url),
    )


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH)


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_csrf_token(settings: Settings, nonce: str) -> str:
    return hmac.new(
        session_secret(settings), b"login:" + nonce.encode("utf-8"), hashlib.sha256
    ).hexdigest()


def check_csrf(expected: str | None, given: object) -> None:
    if not expected or not isinstance(given, str) or not given:
        raise CsrfFailed("Missing or invalid CSRF token")
    if not hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8")):
        raise CsrfFailed("Missing or invalid CSRF token")


def check_login_csrf(settings: Settings, nonce: str | None, given: object) -> None:
    check_csrf(login_csrf_token(settings, nonce) if nonce else None, given)


# -- sessions ------------------------------------------------------------------------------------


def start_session(session: Session, clock: Clock, user: m.User) -> str:
    """Create a session for ``user``; returns the cookie value (shown to nobody else)."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        m.ExtranetSession(
            token_hash=_hash(token),
            user_id=user.id,
            tenant_id=user.tenant_id,
            environment=DEFAULT_ENVIRONMENT,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + LIFETIME,
        )
    )
    session.flush()
    return token


def load_session(session: Session, clock: Clock, token: str | None) -> SignedIn | None:
    """The signed-in user behind a cookie, or None (unknown, expired, idle, user disabled)."""
    if not token or len(token) > 100:
        return None
    row = session.get(m.ExtranetSession, _hash(token))
    if row is None:
        return None
    now = clock.now()
    user = session.get(m.User, row.user_id)
    tenant = session.get(m.Tenant, row.tenant_id)
    if (
        row.expires_at <= now
        or row.last_seen_at + IDLE <= now
        or user is None
        or not user.active
        or tenant is None
        or user.tenant_id != row.tenant_id
    ):
        session.delete(row)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return SignedIn(
        user_id=user.id,
        email=user.email,
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        environment=row.environment,
        csrf_token=row.csrf_token,
    )


def end_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(
            delete(m.ExtranetSession).where(m.ExtranetSession.token_hash == _hash(token))
        )


def set_environment(session: Session, token: str, environment: str) -> None:
    if environment not in ("test", "live"):
        raise PermissionDenied("Unknown environment")
    row = session.get(m.ExtranetSession, _hash(token))
    if row is not None:
        row.environment = environment


# -- throttling ----------------------------------------------------------------------------------


def throttled(session: Session, clock: Clock, email: str, remote_addr: str) -> bool:
    since = clock.now() - WINDOW
    by_email = session.execute(
        select(func.count())
        .select_from(m.LoginFailure)
        .where(m.LoginFailure.email == email, m.LoginFailure.created_at > since)
    ).scalar_one()
    if by_email >= MAX_FAILURES_PER_EMAIL:
        return True
    by_addr = session.execute(
        select(func.count())
        .select_from(m.LoginFailure)
        .where(m.LoginFailure.remote_addr == remote_addr, m.LoginFailure.created_at > since)
    ).scalar_one()
    return bool(by_addr >= MAX_FAILURES_PER_ADDR)


def record_failure(session: Session, clock: Clock, email: str, remote_addr: str) -> None:
    now = clock.now()
    session.execute(delete(m.LoginFailure).where(m.LoginFailure.created_at <= now - WINDOW))
    session.add(m.LoginFailure(email=email[:254], remote_addr=remote_addr[:64], created_at=now))


def clear_failures(session: Session, email: str) -> None:
    session.execute(delete(m.LoginFailure).where(m.LoginFailure.email == email))
