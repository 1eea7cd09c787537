"""Invoices, credit notes, their number sequences, and the e-mails that carry them.

An invoice row is written in the transaction that takes its number (so numbers have no gap and
no duplicate), with a snapshot of everything printed on it; its PDF is stored once, later, and
never changed (``pdf_sha256`` kept beside it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from caisse.storage.models.core import ENV, ID, Base

__all__ = ["Email", "Invoice", "InvoiceSequence"]


class InvoiceSequence(Base):
    """The last number used per tenant, environment, series and year. Its row is locked
    (``FOR UPDATE``; SQLite serialises writers) and bumped in the transaction that inserts the
    invoice, so a number is used exactly when its invoice exists."""

    __tablename__ = "invoice_sequences"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    environment: Mapped[str] = mapped_column(ENV, primary_key=True)
    series: Mapped[str] = mapped_column(String(16), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "environment", "number"),
        # One document per cause: the order's invoice, or a refund level's credit note.
        UniqueConstraint("tenant_id", "environment", "source_key"),
        Index("ix_invoices_tenant_env_id", "tenant_id", "environment", "id"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # invoice | credit_note
    source_key: Mapped[str] = mapped_column(String(120))
    series: Mapped[str] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(BigInteger)
    number: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12))  # numbered -> issued (PDF stored)
    issue_date: Mapped[dt.date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    amount_net: Mapped[int] = mapped_column(BigInteger)
    amount_tax: Mapped[int] = mapped_column(BigInteger)
    amount_gross: Mapped[int] = mapped_column(BigInteger)
    language: Mapped[str] = mapped_column(String(2))
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)  # seller, buyer, lines…
    related_invoice_id: Mapped[str | None] = mapped_column(String(40))
    facturx: Mapped[bool] = mapped_column(Boolean, default=False)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    pdf_size: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]
    issued_at: Mapped[dt.datetime | None]


class Email(Base):
    """One message to a buyer: sent over SMTP (live) or kept in the test mailbox (test)."""

    __tablename__ = "emails"
    __table_args__ = (Index("ix_emails_tenant_env_id", "tenant_id", "environment", "id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(ENV)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(254))
    sender: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(300))
    # queued | sent | captured (test mailbox) | retrying | failed | not_sent
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(300))
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # the message as sent / captured
    created_at: Mapped[dt.datetime]
    sent_at: Mapped[dt.datetime | None]
