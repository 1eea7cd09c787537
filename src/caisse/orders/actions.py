"""Merchant actions on a Stripe order: refund, capture, cancel.

Each action is one Stripe call made with a Stripe idempotency key derived from the order and the
caller's ``Idempotency-Key`` (a retried request never refunds twice), followed by a fresh read of
what Stripe now says, applied through the same state machine as webhooks (``apply_snapshots``),
so the answer already shows the new state and the later webhooks change nothing. No database
lock is held during the Stripe call; the caller's key is claimed first and replayed afterwards.
"""

from __future__ import annotations

import secrets as pysecrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse.domain.events import DomainEvent
from caisse.domain.states import CLOSED_DISPUTE_STATUSES, OrderStatus, refundable_while_disputed
from caisse.errors import CaisseError, Conflict, InvalidRequest
from caisse.orders import idempotency
from caisse.orders.apply import apply_snapshots
from caisse.orders.services import get_order_row
from caisse.orders.views import order_view
from caisse.providers.base import Snapshot
from caisse.providers.stripe.client import StripeGateway
from caisse.providers.stripe.mapping import (
    ORDER_METADATA_KEY,
    charge_snapshot,
    payment_snapshot,
    refund_snapshot,
)
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.tenants.credentials import get_account, stripe_account_header
from caisse.tenants.services import Caller

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_REFUNDABLE = {OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.PARTIALLY_PAID}


def refund(
    rt: Runtime,
    caller: Caller,
    order_id: str,
    *,
    amount: int | None,
    reason: str | None,
    key: str | None,
) -> tuple[int, dict[str, Any]]:
    """Refund ``amount`` (default: all that is left) of a paid order through Stripe."""
    if reason is not None and reason not in REFUND_REASONS:
        raise InvalidRequest(f"reason is one of {', '.join(REFUND_REASONS)}", param="reason")
    scope = f"POST /v1/orders/{order_id}/refunds"
    key = key or f"auto_{pysecrets.token_hex(16)}"
    body = {"amount": amount, "reason": reason}
    with rt.db.write() as s:
        row = get_order_row(s, caller, order_id)
        claim = idempotency.claim(s, caller, scope, key, body, now=rt.clock.now(), box=rt.box)
        if claim.replay is not None:
            return claim.replay
        if row.provider != "stripe" or not row.provider_payment_id:
            idempotency.release(s, caller, scope, key)
            raise Conflict("This order has no Stripe payment to refund")
        left = row.amount_paid - row.amount_refunded
        if not _refundable(s, row) or left <= 0:
            idempotency.release(s, caller, scope, key)
            raise Conflict(f"An order that is {row.status} cannot be refunded")
        if amount is not None and not 0 < amount <= left:
            idempotency.release(s, caller, scope, key)
            raise InvalidRequest(f"amount must be between 1 and {left}", param="amount")
        pi_id = row.provider_payment_id
        # Always name the amount: what is left as caisse knows it (Stripe still refuses more
        # than the charge has left, and localstripe would refund the whole charge again).
        amount = left if amount is None else amount
        gateway = _gateway(rt, s, caller)
        idempotency.note_progress(s, caller, scope, key, {"started": True}, box=rt.box)
    try:
        created = gateway.create_refund(
            payment_intent=pi_id,
            amount=amount,
            reason=reason,
            metadata={ORDER_METADATA_KEY: order_id},
            idempotency_key=f"caisse-refund-{order_id}-{key}",
        )
        now = rt.clock.now()
        snaps: list[Snapshot] = []
        charge_id = created.get("charge")
        if isinstance(charge_id, str) and charge_id:
            snaps.append(charge_snapshot(gateway.retrieve_charge(charge_id), now))
        snaps.append(refund_snapshot(created, now))
    except CaisseError:
        with rt.db.write() as s:
            idempotency.release(s, caller, scope, key)
        raise
    return _finish(rt, caller, order_id, scope, key, snaps, "refund.requested", created["id"])


def capture(
    rt: Runtime, caller: Caller, order_id: str, *, amount: int | None, key: str | None
) -> tuple[int, dict[str, Any]]:
    """Capture an authorised manual-capture payment (all of it, or ``amount``)."""
    scope = f"POST /v1/orders/{order_id}/capture"
    return _intent_action(rt, caller, order_id, scope, key, {"amount": amount}, "capture", amount)


def cancel(
    rt: Runtime, caller: Caller, order_id: str, *, key: str | None
) -> tuple[int, dict[str, Any]]:
    """Cancel an order not paid yet (releases an authorisation)."""
    scope = f"POST /v1/orders/{order_id}/cancel"
    return _intent_action(rt, caller, order_id, scope, key, {}, "cancel", None)


def _intent_action(
    rt: Runtime,
    caller: Caller,
    order_id: str,
    scope: str,
    key: str | None,
    body: dict[str, Any],
    action: str,
    amount: int | None,
) -> tuple[int, dict[str, Any]]:
    key = key or f"auto_{pysecrets.token_hex(16)}"
    with rt.db.write() as s:
        row = get_order_row(s, caller, order_id)
        claim = idempotency.claim(s, caller, scope, key, body, now=rt.clock.now(), box=rt.box)
        if claim.replay is not None:
            return claim.replay
        problem = _refusal(s, row, action, amount)
        if problem is not None:
            idempotency.release(s, caller, scope, key)
            raise problem
        pi_id = str(row.provider_payment_id)
        gateway = _gateway(rt, s, caller)
        idempotency.note_progress(s, caller, scope, key, {"started": True}, box=rt.box)
    stripe_key = f"caisse-{action}-{order_id}-{key}"
    try:
        if action == "capture":
            pi = gateway.capture_payment_intent(pi_id, amount=amount, idempotency_key=stripe_key)
        else:
            pi = gateway.cancel_payment_intent(pi_id, idempotency_key=stripe_key)
        snaps: list[Snapshot] = [payment_snapshot(pi, rt.clock.now())]
    except CaisseError:
        with rt.db.write() as s:
            idempotency.release(s, caller, scope, key)
        raise
    return _finish(rt, caller, order_id, scope, key, snaps, f"{action}.requested", pi_id)


def _refusal(s: Any, row: m.Order, action: str, amount: int | None) -> CaisseError | None:
    if row.provider != "stripe" or not row.provider_payment_id:
        return Conflict(f"This order has no Stripe payment to {action}")
    if action == "cancel":
        if row.amount_paid > 0 or row.status in ("paid", "canceled", "refunded"):
            return Conflict(f"An order that is {row.status} cannot be canceled; refund it")
        return None
    # Whether the intent is still authorised and uncaptured is Stripe's to say (a webhook
    # telling it may not have arrived yet); only what cannot be captured is refused here.
    if row.amount_paid > 0 or row.status in ("paid", "canceled", "refunded", "failed"):
        return Conflict(f"Nothing to capture: the order is {row.status}")
    if amount is not None and not 0 < amount <= row.amount_total:
        return InvalidRequest(f"amount must be between 1 and {row.amount_total}", param="amount")
    return None


def _refundable(s: Session, row: m.Order) -> bool:
    if OrderStatus(row.status) in _REFUNDABLE:
        return True
    if OrderStatus(row.status) is not OrderStatus.DISPUTED:
        return False
    statuses = s.scalars(
        select(m.Dispute.status).where(
            m.Dispute.order_id == row.id,
            m.Dispute.status.not_in([d.value for d in CLOSED_DISPUTE_STATUSES]),
        )
    ).all()
    return refundable_while_disputed(list(statuses))


def _gateway(rt: Runtime, s: Any, caller: Caller) -> StripeGateway:
    account = get_account(s, caller, "stripe")
    return rt.stripe(rt.box.decrypt(account.secrets["secret_key"]), stripe_account_header(account))


def _finish(
    rt: Runtime,
    caller: Caller,
    order_id: str,
    scope: str,
    key: str,
    snaps: list[Snapshot],
    cause: str,
    object_id: str,
) -> tuple[int, dict[str, Any]]:
    with rt.db.write() as s:
        apply_snapshots(
            s,
            order_id,
            snaps,
            now=rt.clock.now(),
            cause=DomainEvent(cause, {"object": object_id}),
        )
        row = get_order_row(s, caller, order_id)
        s.flush()
        s.refresh(row)
        view = order_view(s, row, box=rt.box, secrets=True)
        idempotency.finish(s, caller, scope, key, 200, view, box=rt.box)
    return 200, view
