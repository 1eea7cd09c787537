"""What provider adapters hand to the rest of caisse: provider-neutral, no provider JSON."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from caisse.domain.payments import ChargeSnapshot, DisputeSnapshot, PaymentSnapshot, RefundSnapshot

Snapshot = PaymentSnapshot | ChargeSnapshot | DisputeSnapshot | RefundSnapshot


@dataclass(frozen=True, slots=True)
class OrderLookup:
    """How to find the order an event is about, in order of preference."""

    order_id: str | None = None
    tenant_id: str | None = None
    provider_payment_id: str | None = None


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    account_id: str
    charges_enabled: bool
    payouts_enabled: bool
    requirements_due: tuple[str, ...]
    observed_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Interpretation:
    """An inbound event read by its adapter.

    ``handling`` is ``order`` (snapshots to fold into an order), ``account`` (merchant account
    state), or ``record`` (stored and shown, no state to change: e.g. issuing events).
    """

    handling: str
    lookup: OrderLookup = field(default_factory=OrderLookup)
    snapshots: tuple[Snapshot, ...] = ()
    account: AccountSnapshot | None = None
    note: str | None = None
