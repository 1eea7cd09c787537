"""A simulator of Xsolla's Store API and webhooks, for tests, ``caisse demo`` and local work.

What it models, and from which documents:

- **Token call** ``POST /api/v3/project/{project_id}/admin/payment/token``
  (https://developers.xsolla.com/api/igs-bb/operation/admin-create-payment-token/ and the Shop
  Builder 2.0.0 OpenAPI spec): HTTP Basic ``project_id:api_key`` (the merchant id may stand in
  for the project id), else 401 / ``errorCode`` 1020; body checks (``user.id.value`` 1–255
  characters, ``purchase.items[]`` with a ``[A-Za-z0-9._-]`` SKU and quantity ≥ 1, an RFC 822-ish
  email, ``settings.return_url`` ≤ 1000 characters, ``settings.external_id`` 1–255), else 422 /
  1102; ``user.country.value`` or ``X-User-Ip`` required (422 / 1102, Xsolla's wording); an SKU
  missing from the catalogue 422 / 1417 ("Empty cart"); a free item 422 / 1421; success ``201
  {"token", "order_id"}`` with a 32-character token. Errors are shaped ``{statusCode, errorCode,
  errorMessage}`` with Xsolla's ``[0401-<code>]: …`` messages.
- **Order search** ``POST /api/v3/project/{project_id}/admin/order/search`` (admin-order-search):
  Basic auth, ``limit`` 1–10 (default 10), ``offset``, ``created_date_from/until`` (ISO 8601 date
  or date-time), oldest first, ``{has_more, orders[{order_id, project_id, status, date_created,
  mode, is_free, invoice_id, price, items, user}]}``.
- **Get order** ``GET /api/v2/project/{project_id}/order/{order_id}`` (get-order): authorised by
  the order's own Pay Station token as ``Bearer``; ``{order_id, status, content{price, is_free,
  items}}``; 404 / 9001 "Order not found" for another order. Tokens live 24 h; an unpaid order
  older than that reads as ``expired``.
- **Transaction reports** on the merchant API (Pay Station "Find transactions" and "Find
  transactions (fast search)", https://developers.xsolla.com/api/pay-station/operation/find-transactions/
  and https://xsolla.redocly.app/api/pay-station/reports/find-transactions-fast.md):
  ``GET /merchant/v2/merchants/{merchant_id}/reports/transactions/simple_search`` (exactly one of
  ``transaction_id``/``external_id``, else 422; 404 when nothing matches) and
  ``GET /merchant/v2/merchants/{merchant_id}/reports/transactions/search.json`` (filters
  ``datetime_from/to``, ``project_id``, ``transaction_id``, ``external_id``, ``user_id``, ``type``,
  ``show_dry_run``, ``status``, ``offset``, ``limit``), Basic ``merchant_id:api_key``, JSON lists
  shaped like the reference samples. A paid order has one transaction (``done``; ``refunded`` or
  ``canceled`` after :meth:`SimulatorState.cancel`), listed whether or not its webhook was ever
  sent. Errors use the merchant API's ``{http_status_code, message, request_id}`` shape.
- **Order life cycle** (https://developers.xsolla.com/api/catalog/order-life-cycle): ``new`` →
  ``paid`` → ``done`` (set here once the ``order_paid`` webhook was acknowledged with 2xx — the
  docs do not name the trigger, so this is an assumption), ``canceled`` after a refund.
- **Webhooks** (https://developers.xsolla.com/webhooks/overview/; the sandbox captures in
  ``xsolla/xsolla-ai-kit`` ``skills/webhooks-impl/fixtures``; ``xsolla/xsolla-sdk-php`` message
  tests): ``user_validation``, ``payment``, ``refund``/``partial_refund``, ``order_paid``,
  ``order_canceled`` with their real field names and types (4-decimal strings in ``items`` and
  ``order``, JSON numbers in ``billing``/``payment_details``, ``dry_run`` 1/0, ``order.mode``
  ``sandbox``/``default``), in *combined* mode (payment inside ``billing``) or *separate* mode
  (``payment`` then ``order_paid`` without ``billing``). Bodies are compact JSON signed with
  ``Authorization: Signature sha1(body + secret)``. Answers are classified as Xsolla does: 200,
  201, 204 delivered; 400/401/402/403/404/409/415/422 refused for good; anything else retried on
  :data:`RETRY_DELAYS` (2 × 5 min, 7 × 15 min, 10 × 60 min).

Not modelled: currency conversion by country (a catalogue entry lists its prices per currency;
an unknown currency falls back to the first), promotions and coupons, Pay Station's UI, the
``user_validation`` repeats within one payment, the source IP addresses, and Xsolla's exact
401 answer for a bad Bearer token on get-order (the Basic-auth 1020 answer is reused). Fault
injection (``fail_next``, ``delay``) stands in for Xsolla's outages.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import re
import secrets
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caisse.clock import Clock, SystemClock
from caisse.errors import NotFound
from caisse.providers.xsolla.signature import authorization_header

TOKEN_LIFETIME: Final = dt.timedelta(hours=24)
RETRY_DELAYS: Final = (
    (dt.timedelta(minutes=5),) * 2 + (dt.timedelta(minutes=15),) * 7 + (dt.timedelta(hours=1),) * 10
)
DELIVERED_STATUSES: Final = frozenset({200, 201, 204})
REFUSED_STATUSES: Final = frozenset({400, 401, 402, 403, 404, 409, 415, 422})

_SKU_RE = re.compile(r"[A-Za-z0-9._-]+")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_TOKEN_ALPHABET = string.ascii_letters + string.digits
_FOUR = Decimal("0.0001")
_CENT = Decimal("0.01")


# -- the simulated world -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A sellable SKU with its price per currency (the first currency is the default)."""

    sku: str
    prices: Mapping[str, Decimal]
    type: str = "virtual_good"

    def price_in(self, currency: str | None) -> tuple[Decimal, str]:
        if currency and currency in self.prices:
            return self.prices[currency], currency
        default = next(iter(self.prices))
        return self.prices[default], default


@dataclass(slots=True)
class SimProject:
    """An Xsolla project as a merchant configures it in Publisher Account."""

    project_id: int
    api_key: str
    webhook_secret: str
    merchant_id: int = 887981
    catalog: dict[str, CatalogEntry] = field(default_factory=dict)
    combined_webhooks: bool = True  # projects created after 2025-01-22

    def add_item(self, sku: str, amount: Decimal | str, currency: str = "USD") -> CatalogEntry:
        entry = CatalogEntry(sku=sku, prices={currency.upper(): Decimal(str(amount))})
        self.catalog[sku] = entry
        return entry


@dataclass(frozen=True, slots=True)
class SimItem:
    """One order line; ``amount`` is the line total, as Xsolla's webhooks send it."""

    sku: str
    quantity: int
    amount: Decimal
    type: str = "virtual_good"


@dataclass(slots=True)
class SimOrder:
    order_id: int
    project_id: int
    token: str
    user_id: str
    items: tuple[SimItem, ...]
    currency: str
    sandbox: bool
    created_at: dt.datetime
    user_email: str | None = None
    country: str | None = None
    user_ip: str | None = None
    external_id: str | None = None
    return_url: str | None = None
    custom_parameters: dict[str, Any] = field(default_factory=dict)
    status: str = "new"
    transaction_id: int | None = None
    payment_date: dt.datetime | None = None
    transaction_status: str | None = None  # done, refunded, canceled (the Pay Station side)

    @property
    def amount(self) -> Decimal:
        return sum((item.amount for item in self.items), Decimal(0))

    @property
    def mode(self) -> str:
        return "sandbox" if self.sandbox else "default"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What the simulator received, so tests can assert on auth, headers and body."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class SimulatorState:
    """Projects, orders and fault injection shared by the HTTP app and the webhook sender."""

    def __init__(self, projects: Iterable[SimProject] = (), *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.projects: dict[int, SimProject] = {p.project_id: p for p in projects}
        self.orders: dict[int, SimOrder] = {}
        self.requests: list[RecordedRequest] = []
        self.delay: float = 0.0
        self.retry_after: int | None = None  # sent as Retry-After with a simulated 429
        self._failures: list[int] = []
        self._next_order = 100_001
        self._next_transaction = 2_100_000_001

    def add_project(self, project: SimProject) -> SimProject:
        self.projects[project.project_id] = project
        return project

    def fail_next(self, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` API calls with ``status`` (an outage, a 5xx, a 429…)."""
        self._failures.extend([status] * times)

    def take_failure(self) -> int | None:
        return self._failures.pop(0) if self._failures else None

    def create_order(
        self,
        project: SimProject,
        *,
        user_id: str,
        lines: Sequence[tuple[str, int]],
        sandbox: bool,
        currency: str | None = None,
        **details: Any,
    ) -> SimOrder:
        """Create an order as the token call does; SKUs must exist in the catalogue."""
        items: list[SimItem] = []
        chosen: str | None = None
        for sku, quantity in lines:
            entry = project.catalog.get(sku)
            if entry is None:
                raise NotFound(f"unknown SKU {sku}")
            unit, chosen = entry.price_in(currency or chosen)
            items.append(SimItem(sku, quantity, (unit * quantity).quantize(_FOUR), entry.type))
        order = SimOrder(
            order_id=self._next_order,
            project_id=project.project_id,
            token="".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(32)),
            user_id=user_id,
            items=tuple(items),
            currency=chosen or "USD",
            sandbox=sandbox,
            created_at=self.clock.now(),
            **details,
        )
        self._next_order += 1
        self.orders[order.order_id] = order
        return order

    def status_of(self, order: SimOrder) -> str:
        """The status as Xsolla reports it now: unpaid orders expire with their token."""
        if order.status == "new" and self.clock.now() - order.created_at > TOKEN_LIFETIME:
            return "expired"
        return order.status

    def pay(self, order_id: int) -> SimOrder:
        """The buyer paid in Pay Station: ``new`` → ``paid`` with a transaction id."""
        order = self._order(order_id)
        if self.status_of(order) != "new":
            raise ValueError(f"order {order_id} is {self.status_of(order)}, not new")
        order.status = "paid"
        order.transaction_id = self._next_transaction
        order.payment_date = self.clock.now()
        order.transaction_status = "done"
        self._next_transaction += 1
        return order

    def complete(self, order_id: int) -> SimOrder:
        order = self._order(order_id)
        if order.status == "paid":
            order.status = "done"
        return order

    def cancel(self, order_id: int, *, transaction_status: str = "refunded") -> SimOrder:
        """Refunded (or ``canceled``, e.g. a chargeback) after payment; sends nothing."""
        order = self._order(order_id)
        if order.status not in ("paid", "done"):
            raise ValueError(f"order {order_id} is {order.status}; only paid orders cancel")
        if transaction_status not in ("refunded", "canceled"):
            raise ValueError("a paid transaction becomes refunded or canceled")
        order.status = "canceled"
        order.transaction_status = transaction_status
        return order

    def merchant_projects(self, merchant_id: int) -> list[SimProject]:
        return [p for p in self.projects.values() if p.merchant_id == merchant_id]

    def _order(self, order_id: int) -> SimOrder:
        try:
            return self.orders[order_id]
        except KeyError:
            raise NotFound(f"no simulated order {order_id}") from None

    # Payloads for a stored order.

    def user_validation_payload(self, order_id: int) -> dict[str, Any]:
        order, project = self._order(order_id), self.projects[self._order(order_id).project_id]
        return build_user_validation(
            user_id=order.user_id,
            project_id=project.project_id,
            merchant_id=project.merchant_id,
            email=order.user_email,
            country=order.country,
            ip=order.user_ip,
        )

    def order_payload(self, order_id: int, *, kind: str = "order_paid") -> dict[str, Any]:
        order = self._order(order_id)
        project = self.projects[order.project_id]
        builder = build_order_paid if kind == "order_paid" else build_order_canceled
        return builder(
            order_id=order.order_id,
            user_id=order.user_id,
            items=order.items,
            currency=order.currency,
            transaction_id=order.transaction_id,
            sandbox=order.sandbox,
            email=order.user_email,
            country=order.country,
            project_id=project.project_id,
            merchant_id=project.merchant_id,
            combined=project.combined_webhooks,
            payment_date=order.payment_date,
            external_id=order.external_id,
            custom_parameters=order.custom_parameters or None,
        )

    def payment_payload(
        self, order_id: int, *, refund: bool = False, refund_code: int = 1
    ) -> dict[str, Any]:
        order = self._order(order_id)
        project = self.projects[order.project_id]
        if order.transaction_id is None:
            raise ValueError(f"order {order_id} has not been paid")
        fields: dict[str, Any] = {
            "transaction_id": order.transaction_id,
            "user_id": order.user_id,
            "amount": order.amount,
            "currency": order.currency,
            "dry_run": order.sandbox,
            "project_id": project.project_id,
            "merchant_id": project.merchant_id,
            "payment_date": order.payment_date,
            "external_id": order.external_id,
            "email": order.user_email,
            "country": order.country,
            "custom_parameters": order.custom_parameters or None,
        }
        if refund:
            return build_refund(**fields, code=refund_code)
        return build_payment(**fields)


# -- payload builders (pure; usable without HTTP) ------------------------------------------------


def _money4(value: Decimal) -> str:
    return str(value.quantize(_FOUR, rounding=ROUND_HALF_UP))


def _number(value: Decimal) -> float | int:
    """A JSON number as Xsolla writes it in ``billing``: 1.99, 0, 2.17."""
    rounded = value.quantize(_CENT, rounding=ROUND_HALF_UP)
    return int(rounded) if rounded == rounded.to_integral_value() else float(rounded)


def _when(value: dt.datetime | None) -> str:
    return (value or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")


def _payment_details(total: Decimal, currency: str) -> dict[str, Any]:
    """Fees split like the sandbox capture: Xsolla 5 %, method 5 %, no tax, the rest paid out."""
    fee = (total * Decimal("0.05")).quantize(_CENT, rounding=ROUND_HALF_UP)

    def money(amount: Decimal) -> dict[str, Any]:
        return {"currency": currency, "amount": _number(amount)}

    def taxed(amount: Decimal) -> dict[str, Any]:
        return {**money(amount), "percent": 0}

    return {
        "payment": money(total),
        "payment_method_sum": money(total),
        "xsolla_balance_sum": money(Decimal(0)),
        "payout": money(total - 2 * fee),
        "xsolla_fee": money(fee),
        "payment_method_fee": money(fee),
        "vat": taxed(Decimal(0)),
        "sales_tax": taxed(Decimal(0)),
        "direct_wht": taxed(Decimal(0)),
        "payout_currency_rate": "1",
        "repatriation_commission": money(Decimal(0)),
        "country_wht": taxed(Decimal(0)),
        "user_acquisition_fee": taxed(Decimal(0)),
    }


def _transaction(
    transaction_id: int,
    *,
    dry_run: bool,
    payment_date: dt.datetime | None,
    external_id: str | None,
) -> dict[str, Any]:
    tx: dict[str, Any] = {"id": transaction_id}
    if external_id is not None:
        tx["external_id"] = external_id
    tx.update(
        {
            "payment_method_order_id": str(17_850_000_000_000_000 + transaction_id),
            "dry_run": 1 if dry_run else 0,
            "agreement": 1536354,
            "payment_date": _when(payment_date),
            "payment_method": 1380,
            "payment_method_name": "Bank card",
        }
    )
    return tx


def build_user_validation(
    *,
    user_id: str,
    project_id: int = 44056,
    merchant_id: int = 887981,
    email: str | None = None,
    country: str | None = None,
    ip: str | None = None,
) -> dict[str, Any]:
    """``user_validation``: does this user (the id we put in the token) exist?"""
    user: dict[str, Any] = {"id": user_id}
    for key, value in (("ip", ip), ("email", email), ("country", country)):
        if value is not None:
            user[key] = value
    return {
        "notification_type": "user_validation",
        "settings": {"project_id": project_id, "merchant_id": merchant_id},
        "user": user,
    }


def build_payment(
    *,
    transaction_id: int,
    user_id: str,
    amount: Decimal,
    currency: str = "USD",
    dry_run: bool = True,
    project_id: int = 44056,
    merchant_id: int = 887981,
    payment_date: dt.datetime | None = None,
    external_id: str | None = None,
    email: str | None = None,
    country: str | None = None,
    custom_parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``payment`` (separate mode), shaped like the AI kit's sandbox capture."""
    user: dict[str, Any] = {"id": user_id}
    if email is not None:
        user["email"] = email
    if country is not None:
        user["country"] = country
    total = {"currency": currency, "amount": _number(amount)}
    payload: dict[str, Any] = {
        "notification_type": "payment",
        "settings": {"project_id": project_id, "merchant_id": merchant_id},
        "purchase": {"checkout": dict(total), "total": dict(total)},
        "user": user,
        "transaction": _transaction(
            transaction_id, dry_run=dry_run, payment_date=payment_date, external_id=external_id
        ),
        "payment_details": _payment_details(amount, currency),
    }
    if custom_parameters:
        payload["custom_parameters"] = dict(custom_parameters)
    return payload


def build_refund(
    *,
    code: int = 1,
    reason: str = "Cancellation by the user request",
    partial: bool = False,
    **payment: Any,
) -> dict[str, Any]:
    """``refund`` (or ``partial_refund``): the ``payment`` shape plus ``refund_details``."""
    payload = build_payment(**payment)
    payload["notification_type"] = "partial_refund" if partial else "refund"
    payload["refund_details"] = {"code": code, "reason": reason}
    return payload


def _order_message(
    kind: str,
    *,
    order_id: int,
    user_id: str,
    items: Sequence[SimItem],
    currency: str,
    transaction_id: int | None,
    sandbox: bool,
    email: str | None,
    country: str | None,
    project_id: int,
    merchant_id: int,
    combined: bool,
    payment_date: dt.datetime | None,
    external_id: str | None,
    custom_parameters: Mapping[str, Any] | None,
) -> dict[str, Any]:
    total = sum((item.amount for item in items), Decimal(0))
    user: dict[str, Any] = {"external_id": user_id}
    if email is not None:
        user["email"] = email
    if country is not None:
        user["country"] = country
    payload: dict[str, Any] = {
        "items": [
            {
                "sku": item.sku,
                "type": item.type,
                "is_pre_order": False,
                "quantity": item.quantity,
                "amount": _money4(item.amount),
                "promotions": [],
            }
            for item in items
        ],
        "notification_type": kind,
        "order": {
            "id": order_id,
            "mode": "sandbox" if sandbox else "default",
            "currency_type": "real",
            "currency": currency,
            "amount": _money4(total),
            "status": "paid" if kind == "order_paid" else "canceled",
            "platform": "xsolla",
            "comment": None,
            "invoice_id": str(transaction_id) if transaction_id is not None else None,
            "promotions": [],
        },
        "user": user,
    }
    if combined and transaction_id is not None:
        payload["billing"] = {
            "notification_type": "payment",
            "settings": {"project_id": project_id, "merchant_id": merchant_id},
            "purchase": {"total": {"currency": currency, "amount": _number(total)}},
            "transaction": _transaction(
                transaction_id, dry_run=sandbox, payment_date=payment_date, external_id=external_id
            ),
            "payment_details": _payment_details(total, currency),
        }
    if custom_parameters:
        payload["custom_parameters"] = dict(custom_parameters)
    return payload


def build_order_paid(
    *,
    order_id: int,
    user_id: str,
    items: Sequence[SimItem],
    currency: str = "USD",
    transaction_id: int | None = 2_100_000_001,
    sandbox: bool = True,
    email: str | None = None,
    country: str | None = "US",
    project_id: int = 44056,
    merchant_id: int = 887981,
    combined: bool = True,
    payment_date: dt.datetime | None = None,
    external_id: str | None = None,
    custom_parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``order_paid``: items, order and ``user.external_id``; ``billing`` in combined mode."""
    return _order_message(
        "order_paid", order_id=order_id, user_id=user_id, items=items, currency=currency,
        transaction_id=transaction_id, sandbox=sandbox, email=email, country=country,
        project_id=project_id, merchant_id=merchant_id, combined=combined,
        payment_date=payment_date, external_id=external_id, custom_parameters=custom_parameters,
    )  # fmt: skip


def build_order_canceled(
    *,
    order_id: int,
    user_id: str,
    items: Sequence[SimItem],
    currency: str = "USD",
    transaction_id: int | None = 2_100_000_001,
    sandbox: bool = True,
    email: str | None = None,
    country: str | None = "US",
    project_id: int = 44056,
    merchant_id: int = 887981,
    combined: bool = True,
    payment_date: dt.datetime | None = None,
    external_id: str | None = None,
    custom_parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``order_canceled``: the ``order_paid`` shape, for an order to revoke."""
    return _order_message(
        "order_canceled", order_id=order_id, user_id=user_id, items=items, currency=currency,
        transaction_id=transaction_id, sandbox=sandbox, email=email, country=country,
        project_id=project_id, merchant_id=merchant_id, combined=combined,
        payment_date=payment_date, external_id=external_id, custom_parameters=custom_parameters,
    )  # fmt: skip


# -- webhook sender ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """One webhook attempt: ``outcome`` is ``delivered``, ``refused`` (final) or ``retry``."""

    status_code: int | None
    body: bytes
    outcome: str
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


def classify(status_code: int | None) -> str:
    """What Xsolla does with an answer to ``order_paid``/``order_canceled``."""
    if status_code in DELIVERED_STATUSES:
        return "delivered"
    if status_code in REFUSED_STATUSES:
        return "refused"
    return "retry"


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as in Xsolla's captured bodies."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class WebhookSender:
    """Sends Xsolla-signed webhooks to a URL, as Xsolla's webhook server would."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._secret = secret
        self._own_http = http is None
        self._http = http or httpx.AsyncClient()
        self._timeout = httpx.Timeout(timeout)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def send(self, payload: Mapping[str, Any]) -> DeliveryResult:
        """Serialise, sign and POST one webhook."""
        return await self.send_raw(encode(payload))

    async def send_raw(
        self, body: bytes, *, sign: bool = True, authorization: str | None = None
    ) -> DeliveryResult:
        """POST exact bytes, signed; with ``sign=False``, send ``authorization`` as given
        (None omits the header), for tests of refused signatures."""
        headers = {"Content-Type": "application/json", "User-Agent": "caisse-xsolla-simulator"}
        value = authorization_header(body, self._secret) if sign else authorization
        if value is not None:
            headers["Authorization"] = value
        try:
            response = await self._http.post(
                self.url, content=body, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            return DeliveryResult(None, b"", "retry", error=type(exc).__name__)
        return DeliveryResult(
            response.status_code, response.content, classify(response.status_code)
        )

    async def purchase(self, state: SimulatorState, order_id: int) -> list[DeliveryResult]:
        """Play a payment: ``user_validation``, ``payment`` (separate mode), ``order_paid``.

        A refused ``user_validation`` stops the flow, as at Xsolla; the order becomes ``done``
        once ``order_paid`` is delivered.
        """
        results = [await self.send(state.user_validation_payload(order_id))]
        if not results[-1].delivered:
            return results
        order = state.pay(order_id)
        if not state.projects[order.project_id].combined_webhooks:
            results.append(await self.send(state.payment_payload(order_id)))
            if not results[-1].delivered:
                return results
        results.append(await self.send(state.order_payload(order_id)))
        if results[-1].delivered:
            state.complete(order_id)
        return results

    async def refund(
        self, state: SimulatorState, order_id: int, *, code: int = 1
    ) -> list[DeliveryResult]:
        """Refund a paid order: ``refund`` (separate mode), then ``order_canceled``."""
        order = state.cancel(order_id)
        results: list[DeliveryResult] = []
        if not state.projects[order.project_id].combined_webhooks:
            results.append(
                await self.send(state.payment_payload(order_id, refund=True, refund_code=code))
            )
        results.append(await self.send(state.order_payload(order_id, kind="order_canceled")))
        return results


# -- the HTTP app --------------------------------------------------------------------------------


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"statusCode": status, "errorCode": code, "errorMessage": f"[0401-{code}]: {message}"},
        status_code=status,
    )


def _auth_error() -> JSONResponse:
    return _error(401, 1020, "Error in Authentication method occurred")


def _invalid(message: str) -> JSONResponse:
    return _error(422, 1102, message)


def _basic_ok(request: Request, project: SimProject) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if not sep or username not in (str(project.project_id), str(project.merchant_id)):
        return False
    return hmac.compare_digest(password.encode(), project.api_key.encode())


def _price(amount: Decimal, currency: str) -> dict[str, str]:
    text = _money4(amount)
    return {"amount": text, "amount_without_discount": text, "currency": currency}


def _value(obj: Any, key: str) -> Any:
    inner = obj.get(key) if isinstance(obj, dict) else None
    return inner.get("value") if isinstance(inner, dict) else None


def _merchant_error(status: int, message: str) -> JSONResponse:
    """The merchant API's error shape (Pay Station API reference, "Errors")."""
    return JSONResponse(
        {
            "http_status_code": status,
            "message": message,
            "extended_message": {"global_errors": [], "property_errors": {}},
            "request_id": secrets.token_hex(8),
        },
        status_code=status,
    )


def _merchant_ok(request: Request, projects: Sequence[SimProject]) -> bool:
    """Basic ``merchant_id:api_key``; the key must be one of the merchant's (company-wide)."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded or not projects:
        return False
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if not sep or username != str(projects[0].merchant_id):
        return False
    return any(hmac.compare_digest(password.encode(), p.api_key.encode()) for p in projects)


def _transaction_row(order: SimOrder, project: SimProject, *, full: bool) -> dict[str, Any]:
    """One report row, as in the reference samples (``full``: the ``search.json`` shape)."""
    assert order.transaction_id is not None
    assert order.payment_date is not None
    paid = _number(order.amount)
    tx: dict[str, Any] = {
        "id": order.transaction_id,
        "external_id": order.external_id,
        "status": order.transaction_status,
        "payment_date": order.payment_date.isoformat(timespec="seconds"),
        "project": {"id": project.project_id, "name": f"Project {project.project_id}"},
        "refund_reason": (
            "Cancellation by the user request" if order.transaction_status == "refunded" else None
        ),
    }
    user: dict[str, Any] = {"id": order.user_id, "country": order.country}
    row: dict[str, Any] = {
        "payment_details": {"payment": {"amount": paid, "currency": order.currency}},
        "transaction": tx,
        "user": user,
    }
    if full:
        tx.update(
            {
                "create_date": order.payment_date.date().isoformat(),
                "dry_run": 1 if order.sandbox else 0,
                "is_refund_allowed": 1 if order.transaction_status == "done" else 0,
                "payment_method": {"id": 1380, "name": "Bank card"},
                "transfer_date": order.payment_date.date().isoformat(),
            }
        )
        row["payment_details"]["payment"]["amount_from_ps"] = paid
        row["payment_details"]["sales_tax"] = {"amount": 0, "percent": 0}
        row["payment_system"] = {"decline_reason": None}
        row["purchase"] = {
            "simple_checkout": {"amount": paid, "currency": order.currency},
            "virtual_currency": {"amount": 0, "name": None},
            "virtual_items": None,
            "subscription": {"name": None},
            "pin_codes": {"amount": None, "content": None, "currency": None},
        }
        user.update({"custom": None, "email": order.user_email, "name": None, "phone": None})
    return row


def _parse_date(raw: Any) -> dt.datetime | None:
    if not isinstance(raw, str):
        raise ValueError("not a string")
    value = dt.datetime.fromisoformat(raw)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def create_simulator_app(state: SimulatorState) -> Starlette:
    """The Starlette app answering Xsolla's Store API paths under ``/api``."""

    async def prelude(request: Request) -> tuple[bytes, Response | None]:
        body = await request.body()
        state.requests.append(
            RecordedRequest(request.method, request.url.path, dict(request.headers), body)
        )
        if state.delay:
            await anyio.sleep(state.delay)
        failure = state.take_failure()
        if failure is not None:
            fault = _error(failure, 0, "Simulated failure")
            if failure == 429 and state.retry_after is not None:
                fault.headers["Retry-After"] = str(state.retry_after)
            return body, fault
        return body, None

    def project_for(request: Request) -> SimProject | None:
        project = state.projects.get(request.path_params["project_id"])
        return project if project is not None and _basic_ok(request, project) else None

    async def payment_token(request: Request) -> Response:
        body, fault = await prelude(request)
        if fault is not None:
            return fault
        project = project_for(request)
        if project is None:
            return _auth_error()
        try:
            doc = json.loads(body)
        except ValueError:
            return _invalid("Request body is not valid JSON")
        if not isinstance(doc, dict):
            return _invalid("Request body must be an object")
        user = doc.get("user")
        user_id = _value(user, "id")
        if not isinstance(user_id, str) or not 1 <= len(user_id) <= 255:
            return _invalid("The property `user.id.value` is required")
        email = _value(user, "email")
        if email is not None and (not isinstance(email, str) or not _EMAIL_RE.fullmatch(email)):
            return _invalid("The property `user.email.value` must be a valid email")
        country = _value(user, "country")
        if country is not None and (not isinstance(country, str) or len(country) != 2):
            return _invalid("The property `user.country.value` must be an ISO 3166-1 code")
        user_ip = request.headers.get("x-user-ip")
        if not country and not user_ip:
            return _invalid(
                "The parameter user.country.value or the header X-User-Ip must be specified"
            )
        purchase = doc.get("purchase")
        raw_items = purchase.get("items") if isinstance(purchase, dict) else None
        if not isinstance(raw_items, list) or not raw_items:
            return _error(422, 1417, "Empty cart! Cart shouldn't be empty!")
        lines: list[tuple[str, int]] = []
        for item in raw_items:
            sku = item.get("sku") if isinstance(item, dict) else None
            quantity = item.get("quantity") if isinstance(item, dict) else None
            if not isinstance(sku, str) or not _SKU_RE.fullmatch(sku):
                return _invalid("The property `purchase.items.sku` is invalid")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                return _invalid("The property `purchase.items.quantity` must be at least 1")
            lines.append((sku, quantity))
        sandbox = doc.get("sandbox", False)
        if not isinstance(sandbox, bool):
            return _invalid("The property `sandbox` must be a boolean")
        settings = doc.get("settings") or {}
        if not isinstance(settings, dict):
            return _invalid("The property `settings` must be an object")
        currency = settings.get("currency")
        if currency is not None and not (
            isinstance(currency, str) and _CURRENCY_RE.fullmatch(currency)
        ):
            return _invalid("The property `settings.currency` must be an ISO 4217 code")
        return_url = settings.get("return_url")
        if return_url is not None and not (isinstance(return_url, str) and len(return_url) <= 1000):
            return _invalid("The property `settings.return_url` is too long")
        external_id = settings.get("external_id")
        if external_id is not None and not (
            isinstance(external_id, str) and 1 <= len(external_id) <= 255
        ):
            return _invalid("The property `settings.external_id` must be 1 to 255 characters")
        if any(sku not in project.catalog for sku, _ in lines):
            return _error(422, 1417, "Empty cart! Cart shouldn't be empty!")
        custom = doc.get("custom_parameters")
        order = state.create_order(
            project,
            user_id=user_id,
            lines=lines,
            sandbox=sandbox,
            currency=currency,
            user_email=email,
            country=country,
            user_ip=user_ip,
            external_id=external_id,
            return_url=return_url,
            custom_parameters=dict(custom) if isinstance(custom, dict) else {},
        )
        if order.amount == 0:
            del state.orders[order.order_id]
            return _error(422, 1421, "Item is free")
        return JSONResponse({"token": order.token, "order_id": order.order_id}, status_code=201)

    async def order_search(request: Request) -> Response:
        body, fault = await prelude(request)
        if fault is not None:
            return fault
        project = project_for(request)
        if project is None:
            return _auth_error()
        try:
            doc = json.loads(body) if body else {}
            limit = doc.get("limit", 10)
            offset = doc.get("offset", 0)
            since = _parse_date(doc["created_date_from"]) if "created_date_from" in doc else None
            until = _parse_date(doc["created_date_until"]) if "created_date_until" in doc else None
        except (ValueError, AttributeError):
            return _invalid("Invalid order search parameters")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10:
            return _invalid("The property `limit` must be between 1 and 10")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            return _invalid("The property `offset` must be 0 or more")
        rows = sorted(
            (
                o
                for o in state.orders.values()
                if o.project_id == project.project_id
                and (since is None or o.created_at >= since)
                and (until is None or o.created_at <= until)
            ),
            key=lambda o: (o.created_at, o.order_id),
        )
        page = rows[offset : offset + limit]
        return JSONResponse(
            {"has_more": offset + limit < len(rows), "orders": [_search_row(o) for o in page]}
        )

    def _search_row(order: SimOrder) -> dict[str, Any]:
        return {
            "order_id": order.order_id,
            "project_id": order.project_id,
            "status": state.status_of(order),
            "date_created": order.created_at.isoformat(timespec="seconds"),
            "mode": order.mode,
            "is_free": False,
            "invoice_id": str(order.transaction_id) if order.transaction_id else None,
            "price": _price(order.amount, order.currency),
            "items": [
                {
                    "sku": it.sku,
                    "type": it.type,
                    "quantity": it.quantity,
                    "is_free": False,
                    "is_bonus": False,
                    "price": _price(it.amount, order.currency),
                }
                for it in order.items
            ],
            "user": {"id": order.user_id, "email": order.user_email, "country": order.country},
        }

    async def get_order(request: Request) -> Response:
        _, fault = await prelude(request)
        if fault is not None:
            return fault
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        holder = next((o for o in state.orders.values() if o.token == token), None)
        if scheme.lower() != "bearer" or not token or holder is None:
            return _auth_error()
        if state.clock.now() - holder.created_at > TOKEN_LIFETIME:
            return _auth_error()
        order = state.orders.get(request.path_params["order_id"])
        if request.path_params["project_id"] != holder.project_id:
            order = None
        if order is None or order is not holder:
            return _error(404, 9001, "Order not found")
        return JSONResponse(
            {
                "order_id": order.order_id,
                "status": state.status_of(order),
                "content": {
                    "price": _price(order.amount, order.currency),
                    "virtual_price": None,
                    "is_free": False,
                    "items": [
                        {
                            "sku": it.sku,
                            "quantity": it.quantity,
                            "is_free": False,
                            "price": _price(it.amount, order.currency),
                        }
                        for it in order.items
                    ],
                },
            }
        )

    def merchant_call(request: Request) -> list[SimProject] | Response:
        projects = state.merchant_projects(request.path_params["merchant_id"])
        if not _merchant_ok(request, projects):
            return _merchant_error(401, "Invalid credentials")
        return projects

    def transactions(projects: Sequence[SimProject]) -> list[tuple[SimOrder, SimProject]]:
        by_id = {p.project_id: p for p in projects}
        return sorted(
            (
                (o, by_id[o.project_id])
                for o in state.orders.values()
                if o.project_id in by_id and o.transaction_id is not None
            ),
            key=lambda pair: pair[0].transaction_id or 0,
        )

    async def find_transactions_fast(request: Request) -> Response:
        _, fault = await prelude(request)
        if fault is not None:
            return _merchant_error(fault.status_code, "Simulated failure")
        projects = merchant_call(request)
        if isinstance(projects, Response):
            return projects
        query = request.query_params
        external_id, transaction_id = query.get("external_id"), query.get("transaction_id")
        if (external_id is None) == (transaction_id is None):
            return _merchant_error(422, "Pass transaction_id or external_id, not both")
        if transaction_id is not None and not transaction_id.isdigit():
            return _merchant_error(422, "transaction_id must be an integer")
        rows = [
            _transaction_row(o, p, full=False)
            for o, p in transactions(projects)
            if (external_id is not None and o.external_id == external_id)
            or (transaction_id is not None and str(o.transaction_id) == transaction_id)
        ]
        if not rows:
            return _merchant_error(404, "Transaction not found")
        return JSONResponse(rows)

    async def find_transactions(request: Request) -> Response:
        _, fault = await prelude(request)
        if fault is not None:
            return _merchant_error(fault.status_code, "Simulated failure")
        projects = merchant_call(request)
        if isinstance(projects, Response):
            return projects
        if request.path_params["format"] != "json":
            return _merchant_error(422, "Only the json format is simulated")
        q = request.query_params
        try:
            since = _parse_date(q["datetime_from"]) if "datetime_from" in q else None
            until = _parse_date(q["datetime_to"]) if "datetime_to" in q else None
            offset = int(q.get("offset", "0"))
            limit = int(q.get("limit", "100"))
            project_id = int(q["project_id"]) if "project_id" in q else None
        except ValueError:
            return _merchant_error(422, "Invalid search parameters")
        if offset < 0 or not 1 <= limit <= 1000:
            return _merchant_error(422, "offset must be 0 or more and limit 1 to 1000")
        kind = q.get("type", "all")
        if kind not in ("all", "transferred", "canceled", "test"):
            return _merchant_error(422, "Invalid type")
        dry_run = kind == "test" or q.get("show_dry_run") in ("true", "1")

        def keep(o: SimOrder) -> bool:
            when = o.payment_date
            return bool(
                when is not None
                and (since is None or when >= since)
                and (until is None or when <= until)
                and (project_id is None or o.project_id == project_id)
                and ("transaction_id" not in q or str(o.transaction_id) == q["transaction_id"])
                and ("external_id" not in q or o.external_id == q["external_id"])
                and ("user_id" not in q or o.user_id == q["user_id"])
                and ("status" not in q or o.transaction_status == q["status"])
                and (dry_run or not o.sandbox)
                and (kind != "test" or o.sandbox)
                and (kind != "transferred" or o.transaction_status == "done")
                and (kind != "canceled" or o.transaction_status in ("refunded", "canceled"))
            )

        rows = [_transaction_row(o, p, full=True) for o, p in transactions(projects) if keep(o)]
        return JSONResponse(rows[offset : offset + limit])

    return Starlette(
        routes=[
            Route(
                "/api/v3/project/{project_id:int}/admin/payment/token",
                payment_token,
                methods=["POST"],
            ),
            Route(
                "/api/v3/project/{project_id:int}/admin/order/search",
                order_search,
                methods=["POST"],
            ),
            Route(
                "/api/v2/project/{project_id:int}/order/{order_id:int}",
                get_order,
                methods=["GET"],
            ),
            Route(
                "/merchant/v2/merchants/{merchant_id:int}/reports/transactions/simple_search",
                find_transactions_fast,
                methods=["GET"],
            ),
            Route(
                "/merchant/v2/merchants/{merchant_id:int}/reports/transactions/search.{format}",
                find_transactions,
                methods=["GET"],
            ),
        ]
    )
