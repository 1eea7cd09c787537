"""Provider-neutral snapshots of payment objects, as adapters hand them to the domain.

A snapshot is what the provider said an object looked like at ``observed_at`` (the provider's
own clock, e.g. Stripe's ``event.created``). Amounts are cumulative, never deltas, so applying the
same snapshot twice, or an older one after a newer one, changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from caisse.domain.states import DisputeStatus, PaymentStatus


@dataclass(frozen=True, slots=True)
class PaymentSnapshot:
    provider: str
    provider_payment_id: str
    status: PaymentStatus
    amount: int
    currency: str
    observed_at: dt.datetime
    amount_received: int = 0
    amount_capturable: int = 0
    failure_code: str | None = None
    failure_message: str | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class RefundSnapshot:
    provider: str
    provider_refund_id: str
    amount: int
    status: str  # pending | requires_action | succeeded | failed | canceled
    observed_at: dt.datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeSnapshot:
    """A charge (Stripe) or transaction (Xsolla): what was captured and cumulatively refunded."""

    provider: str
    provider_charge_id: str
    provider_payment_id: str | None
    amount: int
    amount_captured: int
    amount_refunded: int
    currency: str
    paid: bool
    observed_at: dt.datetime
    refunds: tuple[RefundSnapshot, ...] = field(default=())
    method: str | None = None


@dataclass(frozen=True, slots=True)
class DisputeSnapshot:
    provider: str
    provider_dispute_id: str
    provider_charge_id: str | None
    status: DisputeStatus
    amount: int
    currency: str
    observed_at: dt.datetime
    reason: str | None = None
    evidence_due_by: dt.datetime | None = None
    amount_withdrawn: int = 0
    amount_reinstated: int = 0
