"""Stripe event JSON → provider-neutral snapshots (the only place that reads Stripe objects).

State is read from the object snapshot in ``data.object`` (status, cumulative amounts) and the
event's ``created``, never from the event type alone: ``payment_intent.payment_failed`` and
``payment_intent.requires_action`` simply carry a PaymentIntent whose status says what it is.
Both shapes of charge lists are read (``latest_charge`` since 2022-11-15, ``charges.data``
before), as localstripe still sends the old one.

Two readings go beyond the raw status: a bank-transfer PaymentIntent still ``requires_action`` but
with ``amount_remaining`` below its amount is partially funded (Stripe has no such status; that is
what ``payment_intent.partially_funded`` carries); and an uncaptured charge refunded nothing the
buyer paid (API versions before 2025-03-31 release an expired or canceled authorization as a
refund of the whole amount, e.g. ``charge.expired``), so its refunds are not counted.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from caisse.clock import from_timestamp
from caisse.domain.payments import ChargeSnapshot, DisputeSnapshot, PaymentSnapshot, RefundSnapshot
from caisse.domain.states import DisputeStatus, PaymentStatus
from caisse.errors import InvalidRequest
from caisse.providers.base import AccountSnapshot, Interpretation, OrderLookup
from caisse.providers.stripe.client import API_VERSION
from caisse.providers.stripe.envelope import is_time

PROVIDER = "stripe"
ORDER_METADATA_KEY = "caisse_order_id"
TENANT_METADATA_KEY = "caisse_tenant_id"
RELEASE_REFUND_REASON = "expired_uncaptured_charge"
RELEASE_WITHOUT_REFUND_SINCE = "2025-03-31"  # basil: partial capture no longer makes a Refund


def interpret(event: dict[str, Any]) -> Interpretation:
    etype = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object")
    if not isinstance(obj, dict):
        raise InvalidRequest("Event has no data.object")
    created = event.get("created")
    observed = from_timestamp(created) if is_time(created) else _now_fallback()
    kind = obj.get("object")

    if kind == "payment_intent":
        return Interpretation("order", _lookup_from_pi(obj), (payment_snapshot(obj, observed),))
    if kind == "charge":
        snaps = (charge_snapshot(obj, observed, api_version=event.get("api_version")),)
        pi = _id(obj.get("payment_intent"))
        return Interpretation(
            "order",
            OrderLookup(
                order_id=_meta(obj, ORDER_METADATA_KEY),
                tenant_id=_meta(obj, TENANT_METADATA_KEY),
                provider_payment_id=pi,
            ),
            snaps,
        )
    if kind == "refund":
        if obj.get("reason") == RELEASE_REFUND_REASON:
            return Interpretation("record", note="an expired authorization; nothing was paid")
        pi = _id(obj.get("payment_intent"))
        return Interpretation(
            "order",
            OrderLookup(
                order_id=_meta(obj, ORDER_METADATA_KEY),
                provider_payment_id=pi,
            ),
            (refund_snapshot(obj, observed),),
        )
    if kind == "dispute":
        pi = _id(obj.get("payment_intent"))
        return Interpretation(
            "order", OrderLookup(provider_payment_id=pi), (dispute_snapshot(obj, observed),)
        )
    if kind == "account" and etype.startswith("account."):
        return Interpretation("account", account=account_snapshot(obj, observed))
    if etype == "account.application.deauthorized":
        account = event.get("account")
        return Interpretation(
            "account_deauthorized",
            account=AccountSnapshot(
                account_id=str(account or ""),
                charges_enabled=False,
                payouts_enabled=False,
                requirements_due=(),
                observed_at=observed,
            ),
        )
    return Interpretation("record", note=f"{etype} is stored and shown; it changes no order")


def account_snapshot(acct: dict[str, Any], observed: dt.datetime) -> AccountSnapshot:
    """An Account object (an ``account.updated`` event's, or read with ``GET /v1/account``)."""
    req = acct.get("requirements") or {}
    due = tuple(str(x) for x in (req.get("currently_due") or []) + (req.get("past_due") or []))
    return AccountSnapshot(
        account_id=str(acct.get("id")),
        charges_enabled=bool(acct.get("charges_enabled")),
        payouts_enabled=bool(acct.get("payouts_enabled")),
        requirements_due=due,
        observed_at=observed,
    )


def payment_snapshot(pi: dict[str, Any], observed: dt.datetime) -> PaymentSnapshot:
    try:
        status = PaymentStatus(str(pi.get("status")))
    except ValueError as exc:
        raise InvalidRequest(f"Unknown PaymentIntent status {pi.get('status')!r}") from exc
    if status is PaymentStatus.REQUIRES_ACTION and _partially_funded(pi):
        status = PaymentStatus.PARTIALLY_FUNDED
    error = pi.get("last_payment_error") or {}
    if status is not PaymentStatus.REQUIRES_PAYMENT_METHOD:
        error = {}  # a past error is history once the intent has moved on
    return PaymentSnapshot(
        provider=PROVIDER,
        provider_payment_id=str(pi["id"]),
        status=status,
        amount=int(pi.get("amount") or 0),
        currency=str(pi.get("currency") or ""),
        observed_at=observed,
        amount_received=_amount_received(pi, status),
        amount_capturable=int(pi.get("amount_capturable") or 0),
        failure_code=(error.get("decline_code") or error.get("code")) if error else None,
        failure_message=error.get("message") if error else None,
        method=_method(pi),
    )


def charge_snapshot(
    ch: dict[str, Any], observed: dt.datetime, *, api_version: Any = None
) -> ChargeSnapshot:
    """``amount_refunded`` is cumulative; the ``refunds`` list is optional (API versions since
    2022-11-15 leave it out unless expanded), so only the cumulative figure is relied on."""
    paid = bool(ch.get("paid")) and ch.get("status") == "succeeded"
    captured = bool(ch.get("captured", True))
    amount = int(ch.get("amount") or 0)
    amount_captured = (
        int(ch.get("amount_captured", amount if captured else 0) or 0) if paid and captured else 0
    )
    refunds_list = ((ch.get("refunds") or {}).get("data") or []) if captured else []
    refunds = tuple(refund_snapshot(r, observed) for r in refunds_list if isinstance(r, dict))
    refunded = int(ch.get("amount_refunded") or 0) if captured else 0
    if amount_captured and _releases_as_refund(api_version):
        # Before 2025-03-31 a partial capture released the rest as a refund counted in
        # amount_refunded; the buyer got none of it back, since none of it was taken.
        refunded = max(refunded - (amount - amount_captured), 0)
    return ChargeSnapshot(
        provider=PROVIDER,
        provider_charge_id=str(ch["id"]),
        provider_payment_id=_id(ch.get("payment_intent")),
        amount=amount,
        amount_captured=amount_captured,
        amount_refunded=refunded,
        currency=str(ch.get("currency") or ""),
        paid=paid,
        observed_at=observed,
        refunds=refunds,
        method=((ch.get("payment_method_details") or {}).get("type")),
    )


def refund_snapshot(re: dict[str, Any], observed: dt.datetime) -> RefundSnapshot:
    return RefundSnapshot(
        provider=PROVIDER,
        provider_refund_id=str(re["id"]),
        amount=int(re.get("amount") or 0),
        status=str(re.get("status") or "pending"),
        observed_at=observed,
        reason=re.get("reason"),
    )


def dispute_snapshot(dp: dict[str, Any], observed: dt.datetime) -> DisputeSnapshot:
    try:
        status = DisputeStatus(str(dp.get("status")))
    except ValueError as exc:
        raise InvalidRequest(f"Unknown dispute status {dp.get('status')!r}") from exc
    due = (dp.get("evidence_details") or {}).get("due_by")
    withdrawn = reinstated = 0
    for bt in dp.get("balance_transactions") or []:
        if not isinstance(bt, dict):
            continue
        amt = int(bt.get("amount") or 0)
        if amt < 0:
            withdrawn += -amt
        else:
            reinstated += amt
    return DisputeSnapshot(
        provider=PROVIDER,
        provider_dispute_id=str(dp["id"]),
        provider_charge_id=_id(dp.get("charge")),
        status=status,
        amount=int(dp.get("amount") or 0),
        currency=str(dp.get("currency") or ""),
        observed_at=observed,
        reason=dp.get("reason"),
        evidence_due_by=from_timestamp(due) if is_time(due) else None,
        amount_withdrawn=withdrawn,
        amount_reinstated=reinstated,
    )


def _releases_as_refund(api_version: Any) -> bool:
    """Whether this API version turned an uncaptured remainder into a Refund (before basil);
    an object read by caisse itself has the pinned version."""
    version = api_version if isinstance(api_version, str) and api_version else API_VERSION
    return version[:10] < RELEASE_WITHOUT_REFUND_SINCE


def _amount_received(pi: dict[str, Any], status: PaymentStatus) -> int:
    """``amount_received`` when present; older API versions (and localstripe) only list the
    charges, so sum what they captured; a succeeded intent with neither received it all."""
    if pi.get("amount_received") is not None:
        return int(pi["amount_received"])
    charges = (pi.get("charges") or {}).get("data") or []
    captured = 0
    for ch in charges:
        if isinstance(ch, dict) and ch.get("status") == "succeeded" and ch.get("captured", True):
            captured += int(ch.get("amount_captured") or ch.get("amount") or 0)
    if captured:
        return captured
    return int(pi.get("amount") or 0) if status is PaymentStatus.SUCCEEDED else 0


def _partially_funded(pi: dict[str, Any]) -> bool:
    """Funds applied to a bank-transfer intent lower ``amount_remaining`` below its amount."""
    action = pi.get("next_action") or {}
    instructions = action.get("display_bank_transfer_instructions") or {}
    remaining = instructions.get("amount_remaining")
    return isinstance(remaining, int) and 0 < remaining < int(pi.get("amount") or 0)


def _lookup_from_pi(pi: dict[str, Any]) -> OrderLookup:
    return OrderLookup(
        order_id=_meta(pi, ORDER_METADATA_KEY),
        tenant_id=_meta(pi, TENANT_METADATA_KEY),
        provider_payment_id=str(pi.get("id")),
    )


def _meta(obj: dict[str, Any], key: str) -> str | None:
    meta = obj.get("metadata") or {}
    value = meta.get(key) if isinstance(meta, dict) else None
    return str(value) if value else None


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("id")) if value.get("id") else None
    return str(value) if value else None


def _method(pi: dict[str, Any]) -> str | None:
    types = pi.get("payment_method_types") or []
    return str(types[0]) if types and len(types) == 1 else None


def _now_fallback() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
