"""Partner webhook tables: endpoints, one delivery per message × endpoint, every attempt, and
notices for the merchant (e.g. an endpoint disabled after failing for days).

Secrets (signing secrets, the partner's API key) are stored encrypted with the master key
(``caisse.crypto.SecretBox``); ``api_key_hint`` keeps a masked form for views.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from caisse.storage.models.core import ENV, ID, Base, BigInt
from caisse.storage.types import JSONType

__all__ = ["Delivery", "DeliveryAttempt", "Endpoint", "Notice"]


class Endpoint(Base):
    """A partner URL of one tenant and one environment (test = staging, live = production).

    ``secrets`` is a list of ``{"secret": <encrypted whsec_>, "created_at": iso,
    "expires_at": iso | None}``, newest first; every unexpired one signs (rotation grace).
    """

    __tablename__ = "endpoints"
    __table_args__ = (
        Index("ix_endpoints_tenant_env_status", "tenant_id", "environment", "status"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    api_key: Mapped[str | None] = mapped_column(Text)
    api_key_hint: Mapped[str | None] = mapped_column(String(80))
    secrets: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(10), default="enabled")
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    disabled_at: Mapped[dt.datetime | None]
    failing_since: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class Delivery(Base):
    """One message to one endpoint: ``pending`` (first try or a retry is scheduled at
    ``next_attempt_at``), ``delivered``, or ``failed`` (gave up; can be retried/replayed)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "message_id"),
        Index("ix_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_deliveries_tenant_env_status", "tenant_id", "environment", "status"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    environment: Mapped[str] = mapped_column(ENV)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class DeliveryAttempt(Base):
    """One HTTP attempt, written in the same transaction as the delivery's next retry.

    ``outcome``: ``succeeded``, ``failed``, or ``interrupted`` (the worker stopped during the
    attempt; the partner may or may not have received it).
    """

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_delivery_id_id", "delivery_id", "id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(String(40), index=True)
    number: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(12), default="schedule")
    attempted_at: Mapped[dt.datetime]
    url: Mapped[str] = mapped_column(String(2048))
    webhook_id: Mapped[str] = mapped_column(String(60))
    webhook_timestamp: Mapped[int] = mapped_column(BigInt)
    outcome: Mapped[str] = mapped_column(String(12))
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    error_kind: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(String(500))
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    retry_after: Mapped[str | None] = mapped_column(String(512))
    location: Mapped[str | None] = mapped_column(String(512))
    next_attempt_at: Mapped[dt.datetime | None]
    decision: Mapped[str | None] = mapped_column(String(200))


class Notice(Base):
    """Something the merchant must be told (shown by the API/extranet, logged for the
    operator with the same ``action``), e.g. ``endpoint.disabled``."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_tenant_env_id", "tenant_id", "environment", "id"),)
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    action: Mapped[str] = mapped_column(String(60))
    subject_id: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime]
    read_at: Mapped[dt.datetime | None]
