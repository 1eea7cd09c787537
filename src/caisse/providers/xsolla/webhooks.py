"""Xsolla webhook bodies as typed, frozen messages, and Xsolla's error answers.

Shapes follow Xsolla's webhook reference (https://developers.xsolla.com/webhooks/overview/), the
captured sandbox bodies in ``xsolla/xsolla-ai-kit`` (``skills/webhooks-impl/fixtures``) and the
message tests of ``xsolla/xsolla-sdk-php``. Two delivery modes exist: *combined* projects get
``user_validation``, ``order_paid`` and ``order_canceled`` (the payment inside ``billing``);
*separate* projects also get ``payment`` and ``refund`` and no ``billing``. Both parse here.

Parsing policy:

- Publisher Account toggles add or drop fields, so only what caisse needs to act is required
  (the user id, the order id, the transaction id); everything else is optional.
- Every amount becomes a :class:`~decimal.Decimal`: ``items``/``order`` send 4-decimal strings
  (``"1.9900"``), ``billing``/``payment_details`` send JSON numbers, which are read with
  ``parse_float=Decimal`` so no binary float ever touches money.
- An item's ``amount`` is the line total, not the unit price (the SDK's ``order_canceled`` test
  has an order amount of ``2000`` for a 3 × ``1000`` line plus a 1 × ``1000`` line); virtual
  currency lines may carry no price (``"[null]"``), which parses as ``None``.
- Ids are kept as Xsolla types them: ``order.id`` is an integer; transaction and invoice ids are
  strings (``order.invoice_id`` is the string form of ``billing.transaction.id``).
- A malformed body raises :class:`~caisse.errors.InvalidRequest` (answer ``INVALID_PARAMETER``);
  an unknown ``notification_type`` parses as :class:`Unknown` (acknowledge it, as the AI kit says,
  so Xsolla's sequential queue keeps moving).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, ClassVar, Final

from caisse.errors import InvalidRequest

# Xsolla's documented error codes for webhook answers (user-validation page; AI kit).
INVALID_USER: Final = "INVALID_USER"
INVALID_PARAMETER: Final = "INVALID_PARAMETER"
INVALID_SIGNATURE: Final = "INVALID_SIGNATURE"
INCORRECT_AMOUNT: Final = "INCORRECT_AMOUNT"
INCORRECT_INVOICE: Final = "INCORRECT_INVOICE"
ERROR_CODES: Final = frozenset(
    {INVALID_USER, INVALID_PARAMETER, INVALID_SIGNATURE, INCORRECT_AMOUNT, INCORRECT_INVOICE}
)
# Any of 400/401/402/403/404/409/415/422 is a permanent refusal for Xsolla (no retry; refund if
# the merchant turned auto-refund on); 5xx means "retry later". The docs say 400 for errors.
ERROR_STATUS: Final = 400

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """Xsolla's documented error answer: ``{"error": {"code": ..., "message": ...}}``."""
    if code not in ERROR_CODES:
        raise ValueError(f"not an Xsolla webhook error code: {code!r}")
    return {"error": {"code": code, "message": message}}


@dataclass(frozen=True, slots=True)
class Amount:
    """A money value as Xsolla sends it; ``currency`` is ISO 4217, or a SKU for virtual currency."""

    value: Decimal
    currency: str | None


@dataclass(frozen=True, slots=True)
class Item:
    """One order line. ``amount`` is the line total in ``currency``; None for unpriced lines."""

    sku: str
    quantity: int
    amount: Decimal | None
    currency: str | None
    type: str | None = None
    is_pre_order: bool = False


@dataclass(frozen=True, slots=True)
class Transaction:
    """Xsolla's payment transaction (``transaction`` or ``billing.transaction``)."""

    id: str
    external_id: str | None
    payment_date: dt.datetime | None
    payment_method: int | None
    payment_method_name: str | None
    dry_run: bool


@dataclass(frozen=True, slots=True)
class UserValidation:
    """Xsolla asks whether ``user_id`` exists; sent several times per payment, never retried."""

    TYPE: ClassVar[str] = "user_validation"
    user_id: str
    email: str | None
    country: str | None
    ip: str | None
    project_id: int | None
    merchant_id: int | None


@dataclass(frozen=True, slots=True)
class Payment:
    """Separate mode: a payment went through. Record it; fulfil on ``order_paid``."""

    TYPE: ClassVar[str] = "payment"
    user_id: str
    transaction: Transaction
    total: Amount | None
    payment: Amount | None
    project_id: int | None
    merchant_id: int | None
    custom_parameters: Mapping[str, Any] = field(default_factory=_empty, compare=False)

    @property
    def transaction_id(self) -> str:
        return self.transaction.id

    @property
    def dry_run(self) -> bool:
        return self.transaction.dry_run

    @property
    def is_test(self) -> bool:
        return self.transaction.dry_run


@dataclass(frozen=True, slots=True)
class Refund:
    """Separate mode: a payment was cancelled (``refund``, or ``partial_refund`` when partial).

    ``code`` is stored raw: the meaning of the reason codes differs between doc versions.
    """

    TYPE: ClassVar[str] = "refund"
    user_id: str
    transaction: Transaction
    total: Amount | None
    payment: Amount | None
    project_id: int | None
    merchant_id: int | None
    code: int | None
    reason: str | None
    partial: bool = False
    custom_parameters: Mapping[str, Any] = field(default_factory=_empty, compare=False)

    @property
    def transaction_id(self) -> str:
        return self.transaction.id

    @property
    def dry_run(self) -> bool:
        return self.transaction.dry_run

    @property
    def is_test(self) -> bool:
        return self.transaction.dry_run


@dataclass(frozen=True, slots=True)
class _OrderMessage:
    order_id: int
    invoice_id: str | None
    status: str | None
    mode: str | None
    total: Amount | None
    items: tuple[Item, ...]
    user_id: str
    user_email: str | None
    user_country: str | None
    transaction: Transaction | None
    billing_total: Amount | None
    project_id: int | None
    merchant_id: int | None
    custom_parameters: Mapping[str, Any] = field(default_factory=_empty, compare=False)

    @property
    def transaction_id(self) -> str | None:
        """``billing.transaction.id`` (combined mode), else ``order.invoice_id``."""
        return self.transaction.id if self.transaction is not None else self.invoice_id

    @property
    def external_id(self) -> str | None:
        """Our own order id, echoed from ``settings.external_id`` when Xsolla sends it."""
        return self.transaction.external_id if self.transaction is not None else None

    @property
    def sandbox(self) -> bool:
        return self.mode == "sandbox"

    @property
    def dry_run(self) -> bool:
        return self.transaction is not None and self.transaction.dry_run

    @property
    def is_test(self) -> bool:
        """Test traffic by either marker: ``order.mode == "sandbox"`` or ``dry_run == 1``."""
        return self.sandbox or self.dry_run


@dataclass(frozen=True, slots=True)
class OrderPaid(_OrderMessage):
    """The order is paid: grant the items (after matching order id, user, items and amount)."""

    TYPE: ClassVar[str] = "order_paid"


@dataclass(frozen=True, slots=True)
class OrderCanceled(_OrderMessage):
    """The order was cancelled or refunded after payment: revoke what was granted."""

    TYPE: ClassVar[str] = "order_canceled"


@dataclass(frozen=True, slots=True)
class Unknown:
    """A notification type caisse does not act on; acknowledged and logged."""

    type: str


XsollaNotification = UserValidation | OrderPaid | OrderCanceled | Refund | Payment | Unknown


def parse(raw: bytes) -> XsollaNotification:
    """Parse a webhook body (already signature-checked) into a typed message."""
    try:
        doc = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("Webhook body is not valid JSON", param="body") from exc
    if not isinstance(doc, dict):
        raise InvalidRequest("Webhook body is not a JSON object", param="body")
    kind = doc.get("notification_type")
    if not isinstance(kind, str) or not kind:
        raise InvalidRequest("Missing notification_type", param="notification_type")
    if kind == "user_validation":
        return _user_validation(doc)
    if kind == "payment":
        return _payment(doc)
    if kind in ("refund", "partial_refund"):
        return _refund(doc, partial=kind == "partial_refund")
    if kind == "order_paid":
        return OrderPaid(**_order_fields(doc))
    if kind == "order_canceled":
        return OrderCanceled(**_order_fields(doc))
    return Unknown(type=kind)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _user_validation(doc: Mapping[str, Any]) -> UserValidation:
    user = _obj(doc, "user", required=True)
    settings = _obj(doc, "settings")
    return UserValidation(
        user_id=_id(user, "user.id", "id"),
        email=_opt_str(user, "email"),
        country=_opt_str(user, "country"),
        ip=_opt_str(user, "ip"),
        project_id=_opt_int(settings, "settings.project_id", "project_id"),
        merchant_id=_opt_int(settings, "settings.merchant_id", "merchant_id"),
    )


def _payment_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    user = _obj(doc, "user", required=True)
    settings = _obj(doc, "settings")
    purchase = _obj(doc, "purchase")
    details = _obj(doc, "payment_details")
    return {
        "user_id": _id(user, "user.id", "id"),
        "transaction": _transaction(_obj(doc, "transaction", required=True), "transaction"),
        "total": _amount(_obj(purchase, "total"), "purchase.total"),
        "payment": _amount(_obj(details, "payment"), "payment_details.payment"),
        "project_id": _opt_int(settings, "settings.project_id", "project_id"),
        "merchant_id": _opt_int(settings, "settings.merchant_id", "merchant_id"),
        "custom_parameters": _custom(doc),
    }


def _payment(doc: Mapping[str, Any]) -> Payment:
    return Payment(**_payment_fields(doc))


def _refund(doc: Mapping[str, Any], *, partial: bool) -> Refund:
    details = _obj(doc, "refund_details")
    return Refund(
        **_payment_fields(doc),
        code=_opt_int(details, "refund_details.code", "code"),
        reason=_opt_str(details, "reason"),
        partial=partial,
    )


def _order_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    order = _obj(doc, "order", required=True)
    user = _obj(doc, "user", required=True)
    billing = _obj(doc, "billing")
    settings = _obj(billing, "settings")
    currency = _opt_str(order, "currency")
    raw_items = doc.get("items", [])
    if not isinstance(raw_items, list):
        raise InvalidRequest("items must be a list", param="items")
    order_id = _int(order.get("id"), "order.id")
    invoice = order.get("invoice_id")
    billing_tx = _obj(billing, "transaction")
    return {
        "order_id": order_id,
        "invoice_id": None if invoice is None else _id(order, "order.invoice_id", "invoice_id"),
        "status": _opt_str(order, "status"),
        "mode": _opt_str(order, "mode"),
        "total": _amount(order, "order") if order.get("amount") is not None else None,
        "items": tuple(_item(it, i, currency) for i, it in enumerate(raw_items)),
        "user_id": _id(user, "user.external_id", "external_id"),
        "user_email": _opt_str(user, "email"),
        "user_country": _opt_str(user, "country"),
        "transaction": _transaction(billing_tx, "billing.transaction") if billing_tx else None,
        "billing_total": _amount(_obj(_obj(billing, "purchase"), "total"), "billing.purchase"),
        "project_id": _opt_int(settings, "billing.settings.project_id", "project_id"),
        "merchant_id": _opt_int(settings, "billing.settings.merchant_id", "merchant_id"),
        "custom_parameters": _custom(doc),
    }


def _item(raw: Any, index: int, currency: str | None) -> Item:
    where = f"items[{index}]"
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    sku = raw.get("sku")
    if not isinstance(sku, str) or not sku:
        raise InvalidRequest(f"{where}.sku is required", param=f"{where}.sku")
    return Item(
        sku=sku,
        quantity=_int(raw.get("quantity"), f"{where}.quantity"),
        amount=_decimal(raw.get("amount"), f"{where}.amount", nullable=True),
        currency=currency,
        type=_opt_str(raw, "type"),
        is_pre_order=raw.get("is_pre_order") is True,
    )


def _transaction(raw: Mapping[str, Any], where: str) -> Transaction:
    external = raw.get("external_id")
    return Transaction(
        id=_id(raw, f"{where}.id", "id"),
        external_id=None if external is None else _id(raw, f"{where}.external_id", "external_id"),
        payment_date=_datetime(raw.get("payment_date")),
        payment_method=_opt_int(raw, f"{where}.payment_method", "payment_method"),
        payment_method_name=_opt_str(raw, "payment_method_name"),
        # PHP SDK isDryRun(): a missing value is a real payment.
        dry_run=raw.get("dry_run") in (1, "1", True),
    )


def _amount(raw: Mapping[str, Any], where: str) -> Amount | None:
    if not raw or raw.get("amount") is None:
        return None
    value = _decimal(raw.get("amount"), f"{where}.amount", nullable=False)
    assert value is not None
    return Amount(value=value, currency=_opt_str(raw, "currency"))


def _decimal(raw: Any, where: str, *, nullable: bool) -> Decimal | None:
    if raw is None or raw == "[null]":
        if nullable:
            return None
        raise InvalidRequest(f"{where} is required", param=where)
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise InvalidRequest(f"{where} is not an amount", param=where)
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation as exc:
        raise InvalidRequest(f"{where} is not an amount", param=where) from exc
    if not value.is_finite():
        raise InvalidRequest(f"{where} is not an amount", param=where)
    return value


def _datetime(raw: Any) -> dt.datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value.astimezone(dt.UTC) if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _obj(doc: Mapping[str, Any], key: str, *, required: bool = False) -> Mapping[str, Any]:
    value = doc.get(key)
    if isinstance(value, dict):
        return value
    if value is None and not required:
        return _EMPTY
    raise InvalidRequest(f"{key} must be an object", param=key)


def _id(doc: Mapping[str, Any], where: str, key: str) -> str:
    value = doc.get(key)
    if isinstance(value, bool):
        raise InvalidRequest(f"{where} is required", param=where)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    raise InvalidRequest(f"{where} is required", param=where)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise InvalidRequest(f"{where} must be an integer", param=where)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise InvalidRequest(f"{where} must be an integer", param=where)


def _opt_int(doc: Mapping[str, Any], where: str, key: str) -> int | None:
    value = doc.get(key)
    return None if value is None else _int(value, where)


def _opt_str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) and value else None


def _custom(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    value = doc.get("custom_parameters")
    return MappingProxyType(dict(value)) if isinstance(value, dict) else _EMPTY
