"""The sellable catalogue: one row per tenant, environment and SKU (test and live apart)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from caisse.storage.models.core import ENV, ID, Base

__all__ = ["CatalogItem"]


class CatalogItem(Base):
    """A SKU a player may buy; ``amount`` is tax-included minor units of ``currency``."""

    __tablename__ = "catalog_items"
    __table_args__ = (
        UniqueConstraint("tenant_id", "environment", "sku"),
        Index("ix_catalog_items_tenant_env_id", "tenant_id", "environment", "id"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    sku: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # available | unavailable
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
