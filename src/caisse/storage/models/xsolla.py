"""Xsolla Pay Station orders of Firebase players, the players caisse knows, and what they were
granted. The order itself is a normal ``orders`` row (provider ``xsolla``); these tables hold what
only Xsolla needs: the player's uid, the SKU bought, the Pay Station token, the Xsolla order id."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from caisse.storage.models.core import ENV, ID, Base

__all__ = ["Entitlement", "XsollaOrder", "XsollaPlayer"]


class XsollaOrder(Base):
    """One player purchase: written before Xsolla is called, completed with its token."""

    __tablename__ = "xsolla_orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "xsolla_order_id"),
        Index("ix_xsolla_orders_player", "tenant_id", "environment", "uid", "order_id"),
    )
    order_id: Mapped[str] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    uid: Mapped[str] = mapped_column(String(128))
    sku: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    project_id: Mapped[str] = mapped_column(String(16))
    sandbox: Mapped[bool]
    xsolla_order_id: Mapped[int | None] = mapped_column(BigInteger)
    token: Mapped[str | None] = mapped_column(Text)  # encrypted Pay Station token
    return_url: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class XsollaPlayer(Base):
    """A Firebase uid that asked for a payment token: what ``user_validation`` accepts."""

    __tablename__ = "xsolla_players"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    environment: Mapped[str] = mapped_column(ENV, primary_key=True)
    uid: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_seen_at: Mapped[dt.datetime]


class Entitlement(Base):
    """Items granted to a player for a paid order, once; revoked on cancel or refund."""

    __tablename__ = "entitlements"
    __table_args__ = (
        UniqueConstraint("order_id", "sku"),
        Index("ix_entitlements_tenant_env_uid", "tenant_id", "environment", "uid", "id"),
        Index("ix_entitlements_tenant_env_id", "tenant_id", "environment", "id"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    uid: Mapped[str] = mapped_column(String(128))
    sku: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # granted | revoked
    granted_at: Mapped[dt.datetime]
    granted_by_event: Mapped[str | None] = mapped_column(String(40))
    revoked_at: Mapped[dt.datetime | None]
    revoked_by_event: Mapped[str | None] = mapped_column(String(40))
    revoke_reason: Mapped[str | None] = mapped_column(String(200))
