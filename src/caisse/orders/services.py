"""Creating, reading and listing orders.

Creating an order is three steps so that no database lock is held during the Stripe call:
(1) claim the idempotency key and store the order ``open``; (2) create the PaymentIntent with a
Stripe idempotency key derived from the order id (a retry never makes a second intent) and the
order and tenant ids in its metadata; (3) attach the intent to the order and store the response
for replay. A crash between steps is resumed by the next request with the same key; so is a
Stripe call whose outcome is unknown (timeout, connection lost, Stripe 5xx), at once. A call Stripe
refused had no effect there: the order is dropped and the key released.
"""

from __future__ import annotations

import secrets as pysecrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.domain.orders import LineItem, validate_lines
from caisse.domain.states import OrderStatus, PaymentPhase
from caisse.errors import (
    CaisseError,
    InvalidRequest,
    NotFound,
    ProviderTimeout,
    ProviderUnavailable,
)
from caisse.money import normalize_currency
from caisse.orders import idempotency
from caisse.orders.views import order_view
from caisse.providers.stripe.mapping import ORDER_METADATA_KEY, TENANT_METADATA_KEY
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.tenants.credentials import get_account, stripe_account_header
from caisse.tenants.services import Caller

SCOPE = "POST /v1/orders"


@dataclass(frozen=True, slots=True)
class NewOrder:
    currency: str
    lines: list[LineItem]
    customer: dict[str, Any]
    reference: str | None = None
    metadata: dict[str, str] | None = None
    capture_method: str = "automatic"


def create_order(
    rt: Runtime, caller: Caller, new: NewOrder, body: Any, key: str | None
) -> tuple[int, dict[str, Any]]:
    currency = normalize_currency(new.currency)
    total = validate_lines(new.lines)
    key_given = key is not None
    key = key or f"auto_{pysecrets.token_hex(16)}"
    now = rt.clock.now()

    with rt.db.write() as s:
        claim = idempotency.claim(s, caller, SCOPE, key, body, now=now, box=rt.box)
        if claim.replay is not None:
            return claim.replay
        account = get_account(s, caller, "stripe")
        if account.config.get("charges_enabled") is False:
            raise InvalidRequest(
                "Stripe has disabled charges on this account; "
                "complete the account's requirements first"
            )
        secret_key = rt.box.decrypt(account.secrets["secret_key"])
        publishable = account.config.get("publishable_key")
        stripe_account = stripe_account_header(account)
        account_id = account.provider_account_id
        if claim.resume is not None:
            order_id = str(claim.resume["order_id"])
        else:
            order_id = ids.new_id("order")
            s.add(
                m.Order(
                    id=order_id,
                    tenant_id=caller.tenant_id,
                    environment=caller.environment,
                    reference=new.reference,
                    status=OrderStatus.OPEN.value,
                    phase=PaymentPhase.OPEN.value,
                    currency=currency,
                    amount_total=total,
                    customer=new.customer,
                    lines={"data": [_line_json(li) for li in new.lines]},
                    metadata_=new.metadata or {},
                    provider="stripe",
                    provider_publishable_key=publishable,
                    provider_account_id=account_id,
                    created_at=now,
                    updated_at=now,
                )
            )
            s.flush()
            s.add(
                m.OrderEvent(
                    order_id=order_id,
                    type="order.created",
                    data={"amount_total": total, "currency": currency},
                    created_at=now,
                )
            )
            idempotency.note_progress(s, caller, SCOPE, key, {"order_id": order_id}, box=rt.box)

    gateway = rt.stripe(secret_key, stripe_account)
    try:
        created = gateway.create_payment_intent(
            amount=total,
            currency=currency,
            metadata={
                ORDER_METADATA_KEY: order_id,
                TENANT_METADATA_KEY: caller.tenant_id,
                **({"reference": new.reference} if new.reference else {}),
            },
            idempotency_key=f"caisse-order-{order_id}",
            receipt_email=None,
            capture_method=new.capture_method,
        )
    except CaisseError as exc:
        outcome_unknown = isinstance(exc, ProviderTimeout | ProviderUnavailable)
        with rt.db.write() as s:
            if outcome_unknown and key_given:
                # Stripe may have made the intent before the answer was lost: keep the order
                # and its claim, so a retry with the same Idempotency-Key resumes at once and
                # sends the same Stripe idempotency key (one PaymentIntent, whatever happened).
                progress = {"order_id": order_id, idempotency.INTERRUPTED: True}
                idempotency.note_progress(s, caller, SCOPE, key, progress, box=rt.box)
            else:
                row = s.get(m.Order, order_id)
                if row is not None and row.provider_payment_id is None:
                    s.delete(row)
                idempotency.release(s, caller, SCOPE, key)
        raise

    with rt.db.write() as s:
        row = s.get(m.Order, order_id)
        if row is None:
            raise NotFound("Order vanished during creation")
        row.provider_payment_id = created.id
        row.provider_client_secret = rt.box.encrypt(created.client_secret)
        row.updated_at = rt.clock.now()
        s.flush()
        view = order_view(s, row, box=rt.box, secrets=True)
        idempotency.finish(s, caller, SCOPE, key, 201, view, box=rt.box)
    return 201, view


def _line_json(line: LineItem) -> dict[str, Any]:
    return {
        "sku": line.sku,
        "description": line.description,
        "quantity": line.quantity,
        "unit_amount": line.unit_amount,
        "amount": line.amount,
        "tax_rate": str(line.tax_rate) if line.tax_rate is not None else None,
    }


def parse_tax_rate(value: Any, param: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        raise InvalidRequest("tax_rate must be a number", param=param) from None


def get_order_row(s: Session, caller: Caller, order_id: str) -> m.Order:
    row = s.execute(
        select(m.Order).where(
            m.Order.id == order_id,
            m.Order.tenant_id == caller.tenant_id,
            m.Order.environment == caller.environment,
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No such order: {order_id!r}", param="id")
    return row
