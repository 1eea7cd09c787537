"""Xsolla webhooks, handled synchronously: Xsolla wants the verdict in the answer.

Policy (research/xsolla-firebase.md §1):

1. The signature (``sha1(raw body + secret)``) is checked on the raw bytes *before* parsing,
   against the secrets of the tenant's environments; nothing is stored for a bad signature
   (400 ``INVALID_SIGNATURE``).
2. The environment is the notification's own marker: ``dry_run = 1`` or ``order.mode =
   sandbox`` is ``test`` (Xsolla's sandbox), anything else ``live``. The signature must verify
   with *that* environment's secret, and the order must belong to that environment: live refuses
   sandbox notifications and test refuses real ones (400 ``INVALID_PARAMETER``), with no effect
   but a stored ``refused`` event (in the environment whose secret signed it), for the audit.
3. Everything that has an effect happens in ONE transaction: the raw notification is stored as
   an ``InboundEvent`` (unique per tenant on ``<type>:<order or transaction id>``), the checks run,
   the order is moved through ``apply_snapshots`` (so timeline and partner messages are the
   Stripe ones), entitlements are granted or revoked, and the verdict is written on the event.
   The route answers only after the commit; a crash rolls everything back and answers 5xx, which
   Xsolla retries.
4. A duplicate (Xsolla resends for up to ~48 h) finds the stored event and gets the same
   answer again (204), with no second effect.
5. ``user_validation`` has no effect and no id; it is answered from the players table without
   being stored (Xsolla sends it several times per payment and never retries it).
6. A refusal is a 400 with Xsolla's codes: ``INCORRECT_INVOICE`` (an order we never issued, or
   other SKUs/quantities), ``INVALID_USER`` (another player), ``INCORRECT_AMOUNT`` (amount or
   currency differ, compared as Decimal). Refusals are stored too (status ``refused``), under a
   key of their own bytes, so they can be investigated without blocking a later, correct
   notification for the same order; the same refused bytes again are refused again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.domain.events import DomainEvent
from caisse.domain.payments import ChargeSnapshot, PaymentSnapshot, RefundSnapshot
from caisse.domain.states import PaymentStatus
from caisse.errors import InvalidRequest, NotFound, SignatureInvalid
from caisse.money import to_decimal
from caisse.orders.apply import apply_snapshots
from caisse.providers.xsolla import signature
from caisse.providers.xsolla import webhooks as wh
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.storage import orders as order_store
from caisse.storage.sql import insert_ignore
from caisse.tenants.credentials import XsollaAccount, xsolla_accounts
from caisse.xsolla import entitlements
from caisse.xsolla.policy import CANCELED_ORDER_STATUSES

log = logging.getLogger("caisse.xsolla")

PROVIDER = "xsolla"
KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for", "content-length")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer Xsolla gets: 204, or 400 with one of its error codes."""

    code: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code is None

    @property
    def status_code(self) -> int:
        return 204 if self.ok else wh.ERROR_STATUS


OK = Verdict()


class _Refuse(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.verdict = Verdict(code, message)


def handle(
    rt: Runtime,
    tenant_id: str,
    raw: bytes,
    authorization: str | None,
    *,
    headers: Mapping[str, str] | None = None,
    remote_addr: str | None = None,
) -> Verdict:
    """Verify, store, check and apply one notification; blocking (run it in a thread)."""
    with rt.db.read() as s:
        if s.get(m.Tenant, tenant_id) is None:
            raise NotFound("No such tenant", param="tenant_id")
        accounts = xsolla_accounts(s, rt.box, tenant_id)
    signed_for = {env for env, acc in accounts.items() if _signed(raw, authorization, acc)}
    if not signed_for:
        return Verdict(wh.INVALID_SIGNATURE, "Invalid signature")
    try:
        message = wh.parse(raw)
    except InvalidRequest as exc:
        return Verdict(wh.INVALID_PARAMETER, exc.message)
    if isinstance(message, wh.UserValidation):
        return _user_validation(rt, message, {e: accounts[e] for e in signed_for})
    env = _environment(message, signed_for)
    kept = {k.lower(): v for k, v in (headers or {}).items() if k.lower() in KEPT_HEADERS}
    now = rt.clock.now()
    if env not in signed_for:
        (signer,) = signed_for  # the one environment that is not the message's
        log.warning(
            "xsolla notification for the other environment refused",
            extra={
                "action": "xsolla.webhook.wrong_environment",
                "tenant_id": tenant_id,
                "environment": signer,
                "type": _type(message),
            },
        )
        verdict = Verdict(
            wh.INVALID_PARAMETER,
            "Sandbox notifications are refused in live, and real ones in test",
        )
        with rt.db.write() as s:
            event = record_event(
                s,
                tenant_id=tenant_id,
                environment=signer,
                key=_refused_key(message, raw),
                type=_type(message),
                project_id=accounts[signer].project_id,
                created_at=_when(message),
                body=raw,
                headers=kept,
                remote_addr=remote_addr,
                now=now,
            )
            if event is not None:  # None: these very bytes were refused before
                event.status = "refused"
                event.error = f"{verdict.code}: {verdict.message}"
                event.processed_at = now
        return verdict
    account = accounts[env]
    with rt.db.write() as s:
        event = record_event(
            s,
            tenant_id=tenant_id,
            environment=env,
            key=_event_key(message, raw),
            type=_type(message),
            project_id=account.project_id,
            created_at=_when(message),
            body=raw,
            headers=kept,
            remote_addr=remote_addr,
            now=now,
        )
        if event is None:
            return _replay(s, tenant_id, _event_key(message, raw))
        event_id = event.id
        try:
            event.status = _dispatch(s, rt, account, event, message, now)
            verdict = OK
        except _Refuse as refusal:
            # A refusal has no effect and must not claim the order's key (a later, correct
            # notification still counts): it is kept under a key of its own exact bytes.
            verdict = refusal.verdict
            refused_key = _refused_key(message, raw)
            if _exists(s, tenant_id, refused_key):
                s.delete(event)
                return verdict
            event.provider_event_id = refused_key
            event.status = "refused"
            event.error = f"{verdict.code}: {verdict.message}"
            log.warning(
                "xsolla notification refused",
                extra={
                    "action": "xsolla.webhook.refused",
                    "tenant_id": tenant_id,
                    "code": verdict.code,
                    "event_id": event_id,
                },
            )
        event.processed_at = now
    return verdict


def record_event(
    s: Session,
    *,
    tenant_id: str,
    environment: str,
    key: str,
    type: str,
    project_id: str,
    created_at: dt.datetime | None,
    body: bytes,
    headers: Mapping[str, str],
    remote_addr: str | None,
    now: dt.datetime,
) -> m.InboundEvent | None:
    """Store a notification once per (tenant, provider, ``key``), in the caller's transaction,
    as ``pending``; None when that key is already stored (a duplicate: apply nothing). Webhooks
    and reconciliation share the keys, so whichever comes first has the only effect."""
    event_id = ids.new_id("event")
    inserted = s.execute(
        insert_ignore(
            s,
            m.InboundEvent.__table__,  # type: ignore[arg-type]
            conflict=["tenant_id", "provider", "provider_event_id"],
        ).returning(m.InboundEvent.id),
        {
            "id": event_id,
            "tenant_id": tenant_id,
            "environment": environment,
            "provider": PROVIDER,
            "provider_event_id": key,
            "type": type,
            "provider_account_id": project_id,
            "provider_created_at": created_at,
            "body": body,
            "headers": dict(headers),
            "remote_addr": remote_addr,
            "status": "pending",
            "order_id": None,
            "attempts": 1,
            "error": None,
            "run_at": now,  # the row is never left for a worker: the caller makes it final
            "received_at": now,
            "processed_at": None,
        },
    ).scalar_one_or_none()  # RETURNING: rowcounts of ON CONFLICT are not portable
    return None if inserted is None else s.get(m.InboundEvent, event_id)


def order_paid_key(xsolla_order_id: int) -> str:
    """The idempotency key of an order's payment, for ``order_paid`` and reconciliation."""
    return f"order_paid:{xsolla_order_id}"


def order_canceled_key(xsolla_order_id: int) -> str:
    """The idempotency key of an order's cancellation or refund."""
    return f"order_canceled:{xsolla_order_id}"


def _signed(raw: bytes, authorization: str | None, account: XsollaAccount) -> bool:
    try:
        signature.verify(raw, authorization, account.webhook_secret)
    except SignatureInvalid:
        return False
    return True


def _environment(message: wh.XsollaNotification, signed_for: set[str]) -> str:
    if isinstance(message, wh.OrderPaid | wh.OrderCanceled | wh.Payment | wh.Refund):
        return "test" if message.is_test else "live"
    # No marker (unknown types): whichever secret signed it, live first.
    return "live" if "live" in signed_for else "test"


def _event_key(message: wh.XsollaNotification, raw: bytes) -> str:
    digest = hashlib.sha256(raw).hexdigest()
    if isinstance(message, wh.OrderPaid):
        return order_paid_key(message.order_id)
    if isinstance(message, wh.OrderCanceled):
        return order_canceled_key(message.order_id)
    if isinstance(message, wh.Refund) and message.partial:
        return f"partial_refund:{message.transaction_id}:{digest[:16]}"
    if isinstance(message, wh.Payment | wh.Refund):
        return f"{message.TYPE}:{message.transaction_id}"
    if isinstance(message, wh.Unknown):
        return f"{message.type[:40]}:{digest[:32]}"
    raise AssertionError("user_validation is never stored")


def _refused_key(message: wh.XsollaNotification, raw: bytes) -> str:
    """A refusal's own key: its exact bytes, so it never blocks a later correct notification."""
    return f"{_event_key(message, raw)}#refused:{hashlib.sha256(raw).hexdigest()[:24]}"


def _type(message: wh.XsollaNotification) -> str:
    if isinstance(message, wh.Unknown):
        return message.type[:100]
    if isinstance(message, wh.Refund) and message.partial:
        return "partial_refund"
    return str(message.TYPE)


def _when(message: wh.XsollaNotification) -> dt.datetime | None:
    tx = getattr(message, "transaction", None)
    return tx.payment_date if isinstance(tx, wh.Transaction) else None


def _exists(s: Session, tenant_id: str, key: str) -> bool:
    found = s.execute(
        select(m.InboundEvent.id).where(
            m.InboundEvent.tenant_id == tenant_id,
            m.InboundEvent.provider == PROVIDER,
            m.InboundEvent.provider_event_id == key,
        )
    ).first()
    return found is not None


def _replay(s: Session, tenant_id: str, key: str) -> Verdict:
    stored = s.execute(
        select(m.InboundEvent.status, m.InboundEvent.error).where(
            m.InboundEvent.tenant_id == tenant_id,
            m.InboundEvent.provider == PROVIDER,
            m.InboundEvent.provider_event_id == key,
        )
    ).one()
    if stored.status == "refused" and stored.error:
        code, _, text = stored.error.partition(": ")
        return Verdict(code, text)
    return OK


def _user_validation(
    rt: Runtime, message: wh.UserValidation, accounts: Mapping[str, XsollaAccount]
) -> Verdict:
    envs = [
        env
        for env, acc in accounts.items()
        if message.project_id is None or str(message.project_id) == acc.project_id
    ]
    if envs:
        tenant_id = next(iter(accounts.values())).tenant_id
        with rt.db.read() as s:
            known = s.execute(
                select(m.XsollaPlayer.uid).where(
                    m.XsollaPlayer.tenant_id == tenant_id,
                    m.XsollaPlayer.environment.in_(envs),
                    m.XsollaPlayer.uid == message.user_id,
                )
            ).first()
        if known is not None:
            return OK
    return Verdict(wh.INVALID_USER, "Invalid user")


# -- effects -------------------------------------------------------------------------------------


def _dispatch(
    s: Session,
    rt: Runtime,
    account: XsollaAccount,
    event: m.InboundEvent,
    message: wh.XsollaNotification,
    now: dt.datetime,
) -> str:
    """Apply one stored notification; returns the event's final status or raises _Refuse."""
    project = getattr(message, "project_id", None)  # billing/settings.project_id, when sent
    if project is not None and str(project) != account.project_id:
        raise _Refuse(wh.INVALID_PARAMETER, "The notification is for another Xsolla project")
    if isinstance(message, wh.OrderPaid):
        return _order_paid(s, account, event, message, now)
    if isinstance(message, wh.OrderCanceled):
        xo = _find_order(s, account, message.order_id, message.external_id)
        if xo is None:
            return "unmatched"
        _same_environment(xo, account)
        event.order_id = xo.order_id
        revoke(s, xo, event.id, message.transaction_id, now, "order_canceled")
        return "processed"
    if isinstance(message, wh.Refund):
        xo = _find_by_transaction(s, account, message.transaction)
        if xo is None:
            return "unmatched"
        _same_environment(xo, account)
        event.order_id = xo.order_id
        if message.partial:  # amounts of partial refunds are not modelled: recorded only
            return "processed"
        reason = f"refund code {message.code}" if message.code is not None else "refund"
        revoke(s, xo, event.id, message.transaction_id, now, reason)
        return "processed"
    if isinstance(message, wh.Payment):
        # Separate mode: recorded, never fulfilled from; order_paid follows and grants.
        xo = _find_by_transaction(s, account, message.transaction)
        if xo is not None:
            _same_environment(xo, account)
            if xo.uid != message.user_id:
                raise _Refuse(wh.INVALID_USER, "The payment is not from this order's player")
            event.order_id = xo.order_id
        return "processed"
    log.info(
        "xsolla notification of an unhandled type acknowledged",
        extra={
            "action": "xsolla.webhook.unhandled_type",
            "tenant_id": account.tenant_id,
            "type": _type(message),
            "event_id": event.id,
        },
    )
    return "ignored"


def _order_paid(
    s: Session,
    account: XsollaAccount,
    event: m.InboundEvent,
    message: wh.OrderPaid,
    now: dt.datetime,
) -> str:
    xo = _find_order(s, account, message.order_id, message.external_id)
    if xo is None:
        raise _Refuse(wh.INCORRECT_INVOICE, f"Unknown order {message.order_id}")
    _same_environment(xo, account)
    event.order_id = xo.order_id
    if message.user_id != xo.uid:
        raise _Refuse(wh.INVALID_USER, "The order belongs to another user")
    bought: Counter[str] = Counter()
    for item in message.items:
        bought[item.sku] += item.quantity
    if dict(bought) != {xo.sku: xo.quantity}:
        raise _Refuse(wh.INCORRECT_INVOICE, "The items differ from the order's")
    total = message.total or message.billing_total
    expected = to_decimal(xo.unit_amount * xo.quantity, xo.currency)
    if total is None or (total.currency or "").lower() != xo.currency or total.value != expected:
        raise _Refuse(wh.INCORRECT_AMOUNT, "The amount differs from the order's price")
    tx = message.transaction
    settle_paid(
        s,
        xo,
        event.id,
        transaction_id=message.transaction_id,
        xsolla_order_id=message.order_id,
        method=tx.payment_method_name if tx is not None else None,
        observed_at=(tx.payment_date if tx is not None else None) or now,
        now=now,
        cause=DomainEvent(
            "xsolla.order_paid",
            {"xsolla_order_id": message.order_id, "transaction_id": message.transaction_id},
        ),
    )
    return "processed"


def settle_paid(
    s: Session,
    xo: m.XsollaOrder,
    event_id: str,
    *,
    transaction_id: str | None,
    method: str | None,
    observed_at: dt.datetime,
    now: dt.datetime,
    cause: DomainEvent,
    xsolla_order_id: int | None = None,
) -> bool:
    """Record the checked payment through the common path and grant the items once; True
    when the order changed. The caller has matched player, items and amount."""
    amount = xo.unit_amount * xo.quantity
    snapshot = PaymentSnapshot(
        provider=PROVIDER,
        provider_payment_id=_payment_id(transaction_id, xsolla_order_id or xo.xsolla_order_id),
        status=PaymentStatus.SUCCEEDED,
        amount=amount,
        currency=xo.currency,
        observed_at=observed_at,
        amount_received=amount,
        method=method,
    )
    changed = apply_snapshots(
        s, xo.order_id, [snapshot], now=now, cause=cause, source_event_id=event_id
    )
    order = s.get(m.Order, xo.order_id)
    if order is not None and order.status not in CANCELED_ORDER_STATUSES:
        entitlements.grant(s, xo, now=now, event_id=event_id)
    return bool(changed)


def revoke(
    s: Session,
    xo: m.XsollaOrder,
    event_id: str,
    transaction_id: str | None,
    now: dt.datetime,
    reason: str,
) -> bool:
    """Cancel or refund the order through the common path, and take the items back; True
    when the order changed."""
    row, _ = order_store.load(s, xo.order_id)
    payment_id = _payment_id(transaction_id, xo.xsolla_order_id)
    snapshot: PaymentSnapshot | ChargeSnapshot
    if row.amount_paid > 0:
        snapshot = ChargeSnapshot(
            provider=PROVIDER,
            provider_charge_id=payment_id,
            provider_payment_id=payment_id,
            amount=row.amount_total,
            amount_captured=row.amount_paid,
            amount_refunded=row.amount_paid,
            currency=row.currency,
            paid=True,
            observed_at=now,
            refunds=(
                RefundSnapshot(
                    PROVIDER, f"{payment_id}-refund", row.amount_paid, "succeeded", now, reason
                ),
            ),
        )
    else:
        snapshot = PaymentSnapshot(
            provider=PROVIDER,
            provider_payment_id=payment_id,
            status=PaymentStatus.CANCELED,
            amount=row.amount_total,
            currency=row.currency,
            observed_at=now,
        )
    cause = DomainEvent(f"xsolla.{reason.split(' ')[0]}", {"reason": reason})
    changed = apply_snapshots(
        s, xo.order_id, [snapshot], now=now, cause=cause, source_event_id=event_id
    )
    entitlements.revoke(s, xo.order_id, now=now, event_id=event_id, reason=reason)
    return bool(changed)


def _payment_id(transaction_id: str | None, order_id: int | None) -> str:
    return transaction_id or f"order-{order_id}"


def _same_environment(xo: m.XsollaOrder, account: XsollaAccount) -> None:
    if xo.environment != account.environment:
        raise _Refuse(
            wh.INVALID_PARAMETER,
            "Sandbox notifications are refused for live orders, and real ones for test orders",
        )


def _find_order(
    s: Session, account: XsollaAccount, xsolla_order_id: int, external_id: str | None
) -> m.XsollaOrder | None:
    xo = s.execute(
        select(m.XsollaOrder).where(
            m.XsollaOrder.tenant_id == account.tenant_id,
            m.XsollaOrder.xsolla_order_id == xsolla_order_id,
        )
    ).scalar_one_or_none()
    if xo is None and external_id:
        candidate = s.get(m.XsollaOrder, external_id)
        if candidate is not None and candidate.tenant_id == account.tenant_id:
            xo = candidate if candidate.xsolla_order_id in (None, xsolla_order_id) else None
    return xo


def _find_by_transaction(
    s: Session, account: XsollaAccount, tx: wh.Transaction
) -> m.XsollaOrder | None:
    """Our order id comes back as ``transaction.external_id``; else the recorded payment."""
    if tx.external_id:
        candidate = s.get(m.XsollaOrder, tx.external_id)
        if candidate is not None and candidate.tenant_id == account.tenant_id:
            return candidate
    order_id = order_store.find_by_payment_record(s, PROVIDER, tx.id)
    if order_id is None:
        return None
    candidate = s.get(m.XsollaOrder, order_id)
    return candidate if candidate is not None and candidate.tenant_id == account.tenant_id else None
