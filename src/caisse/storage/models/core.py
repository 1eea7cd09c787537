"""Core tables. Provider-owned values carry a ``provider_`` prefix; every tenant row carries
``tenant_id`` and ``environment`` (``test`` | ``live``), and every query filters on both."""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from caisse.storage.types import JSONType, UTCDateTime

__all__ = [
    "ENV",
    "ID",
    "ApiKey",
    "Base",
    "BigInt",
    "Dispute",
    "IdempotencyKey",
    "InboundEvent",
    "Job",
    "Message",
    "Order",
    "OrderEvent",
    "Payment",
    "ProviderAccount",
    "Refund",
    "Tenant",
    "User",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(40)
ENV = String(4)
BigInt = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrement needs INTEGER


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
    }


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    legal: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    environment: Mapped[str] = mapped_column(ENV)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    masked: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class ProviderAccount(Base):
    """A tenant's credentials for one provider in one environment; secrets are encrypted."""

    __tablename__ = "provider_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "environment", "provider"),
        # A Stripe account belongs to one tenant per environment: Connect events are routed
        # by it, so a second tenant claiming it would receive the first one's payments.
        Index(
            "uq_provider_accounts_stripe_account",
            "environment",
            "provider_account_id",
            unique=True,
            sqlite_where=text("provider = 'stripe'"),
            postgresql_where=text("provider = 'stripe'"),
        ),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    provider: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # public values
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)  # name -> Fernet token(s)
    provider_account_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_tenant_env_id", "tenant_id", "environment", "id"),
        Index("ix_orders_tenant_env_status", "tenant_id", "environment", "status"),
        UniqueConstraint("provider", "provider_payment_id"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    reference: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(24))
    phase: Mapped[str] = mapped_column(String(24))
    phase_observed_at: Mapped[dt.datetime | None]
    currency: Mapped[str] = mapped_column(String(3))
    amount_total: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    refunds_observed_at: Mapped[dt.datetime | None]
    customer: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lines: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"data": [...]}
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    provider: Mapped[str | None] = mapped_column(String(20))
    provider_payment_id: Mapped[str | None] = mapped_column(String(64))
    provider_client_secret: Mapped[str | None] = mapped_column(Text)  # encrypted
    provider_publishable_key: Mapped[str | None] = mapped_column(String(255))
    provider_account_id: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    paid_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("order_id", "provider", "provider_payment_id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    provider_payment_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    amount_received: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_capturable: Mapped[int] = mapped_column(BigInteger, default=0)
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(Text)
    method: Mapped[str | None] = mapped_column(String(64))
    observed_at: Mapped[dt.datetime | None]


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("order_id", "provider_refund_id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    provider_refund_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(100))
    observed_at: Mapped[dt.datetime | None]


class Dispute(Base):
    __tablename__ = "disputes"
    __table_args__ = (UniqueConstraint("order_id", "provider_dispute_id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    provider_dispute_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(100))
    evidence_due_by: Mapped[dt.datetime | None]
    amount_withdrawn: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_reinstated: Mapped[int] = mapped_column(BigInteger, default=0)
    observed_at: Mapped[dt.datetime | None]


class OrderEvent(Base):
    """The order's timeline: each status change with the provider event that caused it."""

    __tablename__ = "order_events"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(60))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source_event_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime]


class InboundEvent(Base):
    """A provider webhook exactly as received, stored before it is acknowledged.

    The row is also its own processing job (``status`` pending/retrying, ``run_at``, a lease in
    ``locked_by``/``locked_until``), so storing an event and scheduling its processing is one
    insert and cannot be separated. ``body`` keeps the raw bytes, zlib-compressed when
    ``body_encoding`` says so (lossless; use ``raw_body``). On PostgreSQL a row up to a page
    stays inline and uncompressed (``toast_tuple_target``, migration 0002): pglz at insert cost
    more than the rest of the ingest insert.
    """

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "provider_event_id"),
        Index("ix_inbound_events_tenant_env_id", "tenant_id", "environment", "id"),
        Index("ix_inbound_events_claim", "status", "run_at"),
        {"postgresql_with": {"toast_tuple_target": 8160}},
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    provider: Mapped[str] = mapped_column(String(20))
    provider_event_id: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(100))
    provider_account_id: Mapped[str | None] = mapped_column(String(64))
    provider_created_at: Mapped[dt.datetime | None]
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_encoding: Mapped[str] = mapped_column(String(8), default="identity")
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    order_id: Mapped[str | None] = mapped_column(String(40), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    run_at: Mapped[dt.datetime]
    locked_by: Mapped[str | None] = mapped_column(String(80))
    locked_until: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime]
    processed_at: Mapped[dt.datetime | None]

    @property
    def raw_body(self) -> bytes:
        """The bytes the provider sent, exactly."""
        if self.body_encoding == "zlib":
            return zlib.decompress(self.body)
        return self.body


class Job(Base):
    """The transactional outbox / job queue: rows are written in the transaction that needs
    them done, and claimed by workers with ``FOR UPDATE SKIP LOCKED`` (a lease on SQLite)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "key"),
        Index("ix_jobs_claim", "status", "run_at"),
    )
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tenant_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=25)
    run_at: Mapped[dt.datetime]
    locked_by: Mapped[str | None] = mapped_column(String(80))
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class Message(Base):
    """A partner message written in the same transaction as the state change it reports."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_tenant_env_id", "tenant_id", "environment", "id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    type: Mapped[str] = mapped_column(String(60))
    order_id: Mapped[str | None] = mapped_column(String(40), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime]


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    environment: Mapped[str] = mapped_column(ENV, primary_key=True)
    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime]


class User(Base):
    """An extranet user of one tenant."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("email"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[dt.datetime]
