"""Reconciliation: how far each tenant's provider events were caught up."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from caisse.storage.models.core import ENV, ID, Base

__all__ = ["ReconcileCursor"]


class ReconcileCursor(Base):
    """The provider ``created`` time of the newest event listed for a tenant and environment."""

    __tablename__ = "reconcile_cursors"
    tenant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    environment: Mapped[str] = mapped_column(ENV, primary_key=True)
    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    created_gt: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime]
