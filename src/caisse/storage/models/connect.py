"""Stripe Connect onboarding: the OAuth ``state`` values already used (single use)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from caisse.storage.models.core import ENV, ID, Base

__all__ = ["ConnectState"]


class ConnectState(Base):
    """A consumed OAuth state nonce: the primary key makes a replayed callback fail."""

    __tablename__ = "connect_states"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ID)
    environment: Mapped[str] = mapped_column(ENV)
    used_at: Mapped[dt.datetime]
