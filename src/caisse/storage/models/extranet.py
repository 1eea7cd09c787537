"""Extranet tables: server-side sessions (so logging out really ends a session) and recent
failed logins (so throttling holds across processes)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from caisse.storage.models.core import ENV, ID, Base, BigInt

__all__ = ["ExtranetSession", "LoginFailure"]


class ExtranetSession(Base):
    """One signed-in browser. Only the SHA-256 of the cookie's token is stored."""

    __tablename__ = "extranet_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    environment: Mapped[str] = mapped_column(ENV)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class LoginFailure(Base):
    """A failed sign-in; rows older than the throttling window are purged on the next login."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_email_at", "email", "created_at"),
        Index("ix_login_failures_addr_at", "remote_addr", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254))
    remote_addr: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
