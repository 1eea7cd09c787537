"""Folding snapshots into a domain ``Order`` the way ``caisse.orders.apply`` does, minus storage."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from typing import Any

from caisse.domain.events import DomainEvent
from caisse.domain.orders import Order
from caisse.domain.payments import ChargeSnapshot, DisputeSnapshot, PaymentSnapshot
from caisse.providers.base import Snapshot
from caisse.providers.stripe import mapping, simulate

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
AMOUNT = 2000
PI = "pi_3QHelpersPaymentIntent0"


def at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(T0 + seconds, dt.UTC)


def new_order(amount: int = AMOUNT) -> Order:
    return Order("ord_test", "ten_test", "test", "eur", amount)


def apply(order: Order, snap: Snapshot) -> list[DomainEvent]:
    if isinstance(snap, PaymentSnapshot):
        return order.apply_payment(snap)
    if isinstance(snap, ChargeSnapshot):
        return order.apply_charge(snap)
    if isinstance(snap, DisputeSnapshot):
        return order.apply_dispute(snap)
    return order.apply_refund(
        snap.provider_refund_id,
        snap.provider,
        snap.amount,
        snap.status,
        snap.observed_at,
        snap.reason,
    )


def fold(snaps: Iterable[Snapshot], order: Order | None = None) -> tuple[Order, list[DomainEvent]]:
    order = order or new_order()
    events: list[DomainEvent] = []
    for snap in snaps:
        events += apply(order, snap)
    return order, events


def partner(events: Iterable[DomainEvent]) -> list[str]:
    """The partner message types, in emission order."""
    return [str(e.type) for e in events if e.is_partner_message]


def snapshots(events: Iterable[dict[str, Any]]) -> list[Snapshot]:
    return [snap for event in events for snap in mapping.interpret(event).snapshots]


def event(event_type: str, seconds: int = 0, **kwargs: Any) -> dict[str, Any]:
    """One simulated Stripe event about the shared PaymentIntent, ``seconds`` after T0."""
    kwargs.setdefault("rng", random.Random(event_type))
    return simulate.build_event(
        event_type,
        livemode=False,
        payment_intent_id=PI,
        amount=AMOUNT,
        created=T0 + seconds,
        **kwargs,
    )


def snap(event_type: str, seconds: int = 0, **kwargs: Any) -> Snapshot:
    (only,) = mapping.interpret(event(event_type, seconds, **kwargs)).snapshots
    return only
