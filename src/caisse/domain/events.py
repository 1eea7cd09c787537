"""What happened to an order, in domain words; partners and the timeline are fed from these."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class MessageType(StrEnum):
    """Partner message types (DESIGN.md, the contract)."""

    ORDER_PAID = "order.paid"
    ORDER_PAYMENT_FAILED = "order.payment_failed"
    ORDER_REFUNDED = "order.refunded"
    ORDER_DISPUTE_OPENED = "order.dispute.opened"
    ORDER_DISPUTE_CLOSED = "order.dispute.closed"
    ORDER_CANCELED = "order.canceled"
    INVOICE_ISSUED = "invoice.issued"


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """One fact worth telling: ``type`` is a partner message type or a timeline-only kind."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_partner_message(self) -> bool:
        return self.type in MessageType.__members__.values()
