"""Calls caisse makes to Xsolla's Store API (Shop Builder / Catalog API 2.0.0).

- ``POST {base}/api/v3/project/{project_id}/admin/payment/token`` with HTTP Basic
  ``project_id:api_key`` creates an order and its Pay Station token; success is ``201
  {"token", "order_id"}`` (any 2xx is accepted, as Xsolla's samples do). Xsolla needs either
  ``user.country.value`` or an ``X-User-Ip`` header to pick the currency, else 422 / 1102.
- ``POST {base}/api/v3/project/{project_id}/admin/order/search`` (Basic auth) lists orders by
  creation date, for reconciliation of webhooks that never came.
- ``GET {base}/api/v2/project/{project_id}/order/{order_id}`` is a client-side call authorised by
  the order's Pay Station token (``Bearer``); there is no Basic-auth "get order" in the API.
- Pay Station reports, on the *merchant* API (``{merchant_base}``, ``https://api.xsolla.com`` in
  production), HTTP Basic ``merchant_id:api_key`` with a key valid for all the company's projects
  (these paths carry no project id):

  - ``GET /merchant/v2/merchants/{merchant_id}/reports/transactions/simple_search`` ("Find
    transactions (fast search)", answers "within seconds"): exactly one of ``transaction_id`` or
    ``external_id`` (else 422), 404 when no transaction matches; a JSON list of transactions
    ``{transaction{id, external_id, status, payment_date, project{id, name}, refund_reason},
    payment_details{payment{amount, currency}}, user{id, country, …}}``.
  - ``GET /merchant/v2/merchants/{merchant_id}/reports/transactions/search.json`` ("Find
    transactions"): filters ``datetime_from``, ``datetime_to``, ``project_id``, ``transaction_id``,
    ``external_id``, ``user_id``, ``type`` (``all``/``transferred``/``canceled``/``test``),
    ``show_dry_run``, ``status``, ``offset``, ``limit``; a JSON list with ``transaction{…,
    dry_run, create_date}`` and ``purchase`` as well.

  Transaction statuses: ``created``, ``processing``, ``review``, ``error``, ``done``,
  ``awaitingRefund``, ``refunded``, ``canceled``, ``partiallyRefunded``.

Sources: https://developers.xsolla.com/api/igs-bb/operation/admin-create-payment-token/ ,
https://xsolla.redocly.app/api/shop-builder/order/admin-order-search.md ,
https://developers.xsolla.com/api/igs-bb/operation/get-order/ ,
https://developers.xsolla.com/api/pay-station/operation/find-transactions/ ,
https://xsolla.redocly.app/api/pay-station/reports/find-transactions-fast.md . Xsolla publishes no
numeric rate limit for these calls; see ``providers/xsolla/ratelimit.py``.

Errors are translated here and nowhere else: an Xsolla 4xx raises :class:`XsollaRejected` (a
:class:`~caisse.errors.ProviderRejected` carrying Xsolla's HTTP status and ``errorCode``; a 429 is
its subclass :class:`XsollaThrottled`, with Xsolla's ``Retry-After``), a 5xx or a network failure
:class:`~caisse.errors.ProviderUnavailable`, a timeout :class:`~caisse.errors.ProviderTimeout`,
and a 2xx answer that is not what the API documents a plain :class:`~caisse.errors.ProviderError`.

``timeout`` is one **total** deadline per call (connect, send, wait, read the whole body), not
httpx's per-phase timeout: a server trickling its answer a byte at a time cannot hold a request
for longer. The player endpoint relies on it: its idempotency claim goes stale after 30 s, and
the call must be over long before (see ``caisse.xsolla.players``).

The API key is never logged, never put in a message, and httpx exceptions are not chained (their
request objects carry the ``Authorization`` header).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeGuard
from urllib.parse import urlencode

import anyio
import httpx

from caisse.errors import (
    InvalidRequest,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)

API_VERSION: Final = "2.0.0"
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_MERCHANT_API_BASE: Final = "https://api.xsolla.com"
SEARCH_PAGE: Final = 100
MAX_RETRY_AFTER: Final = 60
_PROJECT_RE = re.compile(r"[0-9]{1,12}")
_MAX_MESSAGE = 200


class XsollaRejected(ProviderRejected):
    """Xsolla answered 4xx; ``status_code`` and Xsolla's numeric ``error_code`` say why."""

    def __init__(self, message: str, *, status_code: int, error_code: int | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code


class XsollaThrottled(XsollaRejected):
    """Xsolla answered 429: a transient refusal (503 to our caller, never a permanent one);
    ``retry_after`` is Xsolla's ``Retry-After`` in seconds (1–60), or None."""

    code = "provider_rate_limited"

    def __init__(self, message: str, *, error_code: int | None, retry_after: int | None) -> None:
        super().__init__(message, status_code=429, error_code=error_code)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class TokenResult:
    """A Pay Station token and the Xsolla order it pays for (webhooks carry ``order.id``)."""

    token: str
    xsolla_order_id: int


@dataclass(frozen=True, slots=True)
class Price:
    amount: Decimal
    amount_without_discount: Decimal | None
    currency: str | None


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """One row of the admin order search."""

    order_id: int
    project_id: int | None
    status: str
    mode: str | None
    date_created: dt.datetime | None
    invoice_id: str | None
    is_free: bool
    price: Price | None

    @property
    def sandbox(self) -> bool:
        return self.mode == "sandbox"


@dataclass(frozen=True, slots=True)
class OrderSearchPage:
    orders: tuple[OrderSummary, ...]
    has_more: bool


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    quantity: int
    is_free: bool
    price: Price | None


@dataclass(frozen=True, slots=True)
class OrderDetails:
    """The client-side view of one order: ``new``/``paid``/``done``/``canceled``."""

    order_id: int
    status: str
    price: Price | None
    is_free: bool
    items: tuple[OrderLine, ...]


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """One Pay Station transaction as the merchant reports describe it.

    ``external_id`` is our order id (sent as ``settings.external_id`` in the token call);
    ``amount``/``currency`` are what the buyer paid (``payment_details.payment``); ``dry_run`` is
    None when the answer does not say (the fast search documents no such field). ``raw`` is the
    transaction's JSON as received, kept for the audit trail only.
    """

    id: str
    external_id: str | None
    status: str
    project_id: str | None
    user_id: str | None
    amount: Decimal | None
    currency: str | None
    dry_run: bool | None
    payment_date: dt.datetime | None
    refund_reason: str | None
    payment_method: str | None
    raw: bytes


class XsollaClient:
    """Async client for the Xsolla calls caisse needs; one instance per process."""

    def __init__(
        self,
        api_base: str,
        *,
        merchant_api_base: str | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._base = api_base.rstrip("/")
        self._merchant_base = (merchant_api_base or DEFAULT_MERCHANT_API_BASE).rstrip("/")
        self._own_http = http is None
        self._http = http or httpx.AsyncClient()
        self.deadline = timeout
        self._timeout = httpx.Timeout(timeout)

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_http:
            await self._http.aclose()

    async def create_payment_token(
        self,
        project_id: int | str,
        api_key: str,
        *,
        user_id: str,
        sku: str,
        quantity: int = 1,
        sandbox: bool,
        external_id: str,
        user_email: str | None = None,
        return_url: str | None = None,
        currency: str | None = None,
        user_ip: str | None = None,
        country: str | None = None,
        language: str | None = None,
        custom_parameters: Mapping[str, str | int | bool] | None = None,
        deadline: float | None = None,
    ) -> TokenResult:
        """Create an Xsolla order for one catalogue SKU and return its Pay Station token.

        ``external_id`` (our order id) goes into ``settings.external_id`` and comes back in the
        payment's ``transaction.external_id``. ``sandbox`` is a server setting, never the
        client's choice. Pass ``user_ip`` (sent as ``X-User-Ip``) or ``country``. ``deadline``
        shortens the client's total deadline for this call (never lengthens it).
        """
        project = _project(project_id)
        user: dict[str, Any] = {"id": {"value": user_id}}
        if user_email:
            user["email"] = {"value": user_email}
        if country:
            user["country"] = {"value": country.upper(), "allow_modify": False}
        settings: dict[str, Any] = {"external_id": external_id}
        if currency:
            settings["currency"] = currency.upper()
        if return_url:
            settings["return_url"] = return_url
        if language:
            settings["language"] = language.lower()
        body: dict[str, Any] = {
            "user": user,
            "purchase": {"items": [{"sku": sku, "quantity": quantity}]},
            "sandbox": bool(sandbox),
            "settings": settings,
        }
        if custom_parameters:
            body["custom_parameters"] = dict(custom_parameters)
        headers = {"Authorization": _basic(project, api_key)}
        if user_ip:
            headers["X-User-Ip"] = user_ip
        url = f"{self._base}/api/v3/project/{project}/admin/payment/token"
        doc = await self._call(
            "POST", url, json_body=body, headers=headers, secret=api_key, deadline=deadline
        )
        token = doc.get("token")
        order_id = doc.get("order_id")
        if not isinstance(token, str) or not token or not _is_int(order_id):
            raise ProviderError("Xsolla returned a malformed payment token answer")
        return TokenResult(token=token, xsolla_order_id=int(order_id))

    async def search_orders(
        self,
        project_id: int | str,
        api_key: str,
        *,
        created_from: dt.datetime | None = None,
        created_until: dt.datetime | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> OrderSearchPage:
        """One page of the project's orders created in a period (admin, Basic auth)."""
        project = _project(project_id)
        body: dict[str, Any] = {"limit": limit, "offset": offset}
        if created_from is not None:
            body["created_date_from"] = _iso(created_from)
        if created_until is not None:
            body["created_date_until"] = _iso(created_until)
        url = f"{self._base}/api/v3/project/{project}/admin/order/search"
        headers = {"Authorization": _basic(project, api_key)}
        doc = await self._call("POST", url, json_body=body, headers=headers, secret=api_key)
        rows = doc.get("orders")
        if not isinstance(rows, list):
            raise ProviderError("Xsolla returned a malformed order search answer")
        return OrderSearchPage(
            orders=tuple(_summary(row) for row in rows), has_more=doc.get("has_more") is True
        )

    async def get_order(self, project_id: int | str, order_id: int, *, token: str) -> OrderDetails:
        """An order's status, authorised by its Pay Station token (valid 24 h by default)."""
        project = _project(project_id)
        if not _is_int(order_id):
            raise InvalidRequest("Xsolla order ids are integers", param="order_id")
        url = f"{self._base}/api/v2/project/{project}/order/{int(order_id)}"
        headers = {"Authorization": f"Bearer {token}"}
        doc = await self._call("GET", url, json_body=None, headers=headers, secret=token)
        content = doc.get("content")
        content = content if isinstance(content, dict) else {}
        lines = content.get("items")
        status = doc.get("status")
        if not _is_int(doc.get("order_id")) or not isinstance(status, str):
            raise ProviderError("Xsolla returned a malformed order answer")
        return OrderDetails(
            order_id=int(doc["order_id"]),
            status=status,
            price=_price(content.get("price")),
            is_free=content.get("is_free") is True,
            items=tuple(_line(x) for x in lines if isinstance(x, dict))
            if isinstance(lines, list)
            else (),
        )

    async def find_transactions_fast(
        self,
        merchant_id: int | str,
        api_key: str,
        *,
        external_id: str | None = None,
        transaction_id: int | None = None,
    ) -> tuple[TransactionRecord, ...]:
        """The transactions of one of our orders (``external_id``) or one transaction id, from
        the fast search; empty when Xsolla has none (404: the buyer never paid)."""
        if (external_id is None) == (transaction_id is None):
            raise InvalidRequest("Pass external_id or transaction_id, not both")
        merchant = _project(merchant_id, param="merchant_id")
        params = (
            {"external_id": external_id}
            if external_id is not None
            else {"transaction_id": str(transaction_id)}
        )
        url = (
            f"{self._merchant_base}/merchant/v2/merchants/{merchant}/reports/transactions/"
            f"simple_search?{urlencode(params)}"
        )
        headers = {"Authorization": _basic(merchant, api_key)}
        try:
            doc = await self._request("GET", url, json_body=None, headers=headers, secret=api_key)
        except XsollaRejected as exc:
            if exc.status_code == 404:
                return ()
            raise
        return parse_transactions(doc)

    async def search_transactions(
        self,
        merchant_id: int | str,
        api_key: str,
        *,
        project_id: int | str,
        datetime_from: dt.datetime,
        datetime_to: dt.datetime,
        status: str | None = None,
        dry_run: bool = False,
        limit: int = SEARCH_PAGE,
        offset: int = 0,
    ) -> tuple[TransactionRecord, ...]:
        """One page of the project's transactions in a period (``search.json``); ``dry_run``
        asks for sandbox transactions too (``show_dry_run``)."""
        merchant = _project(merchant_id, param="merchant_id")
        params: dict[str, str] = {
            "project_id": _project(project_id),
            "datetime_from": _iso(datetime_from),
            "datetime_to": _iso(datetime_to),
            "offset": str(offset),
            "limit": str(limit),
        }
        if status:
            params["status"] = status
        if dry_run:
            params["show_dry_run"] = "true"
        url = (
            f"{self._merchant_base}/merchant/v2/merchants/{merchant}/reports/transactions/"
            f"search.json?{urlencode(params)}"
        )
        headers = {"Authorization": _basic(merchant, api_key)}
        doc = await self._request("GET", url, json_body=None, headers=headers, secret=api_key)
        return parse_transactions(doc)

    async def _call(
        self,
        method: str,
        url: str,
        *,
        json_body: Any,
        headers: dict[str, str],
        secret: str,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        doc = await self._request(
            method, url, json_body=json_body, headers=headers, secret=secret, deadline=deadline
        )
        if not isinstance(doc, dict):
            raise ProviderError("Xsolla returned a JSON body that is not an object")
        return doc

    async def _request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any,
        headers: dict[str, str],
        secret: str,
        deadline: float | None = None,
    ) -> Any:
        total = self.deadline if deadline is None else min(deadline, self.deadline)
        try:
            # One deadline for the whole exchange; httpx's own timeout is per phase.
            with anyio.fail_after(max(total, 0.0)):
                response = await self._http.request(
                    method,
                    url,
                    json=json_body,
                    headers={"Accept": "application/json", **headers},
                    timeout=self._timeout,
                )
        except (TimeoutError, httpx.TimeoutException):
            raise ProviderTimeout("Xsolla did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"Xsolla could not be reached ({type(exc).__name__})"
            ) from None
        status = response.status_code
        if status >= 500:
            raise ProviderUnavailable(f"Xsolla answered HTTP {status}")
        if status >= 400:
            code, text = _error_details(response)
            detail = f": {_scrub(text, secret, headers)}" if text else ""
            suffix = f", error {code}" if code is not None else ""
            if status == 429:
                raise XsollaThrottled(
                    f"Xsolla is rate limiting these calls (HTTP 429{suffix})",
                    error_code=code,
                    retry_after=_retry_after(response.headers.get("retry-after")),
                )
            raise XsollaRejected(
                f"Xsolla refused the request (HTTP {status}{suffix}){detail}",
                status_code=status,
                error_code=code,
            )
        if status < 200 or status >= 300:
            raise ProviderError(f"Xsolla answered an unexpected HTTP {status}")
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ProviderError("Xsolla returned a body that is not JSON") from None


def _project(project_id: int | str, *, param: str = "project_id") -> str:
    value = str(project_id).strip()
    if isinstance(project_id, bool) or not _PROJECT_RE.fullmatch(value):
        raise InvalidRequest(f"Xsolla {param.replace('_', ' ')}s are integers", param=param)
    return value


def _retry_after(value: str | None) -> int | None:
    """Seconds from a ``Retry-After`` header (delta form only), clamped to 1–60."""
    if value is None or not value.strip().isdigit():
        return None
    return min(max(int(value.strip()), 1), MAX_RETRY_AFTER)


def _basic(project: str, api_key: str) -> str:
    if not api_key:
        raise InvalidRequest("The Xsolla API key is not configured", param="api_key")
    raw = f"{project}:{api_key}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC datetime")
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _error_details(response: httpx.Response) -> tuple[int | None, str]:
    """Store API errors look like ``{statusCode, errorCode, errorMessage, transactionId?}``;
    merchant API errors like ``{http_status_code, message, extended_message, request_id}``."""
    try:
        doc = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, ""
    if not isinstance(doc, dict):
        return None, ""
    code = doc.get("errorCode")
    message = doc.get("errorMessage", doc.get("message"))
    return (
        int(code) if _is_int(code) else None,
        message if isinstance(message, str) else "",
    )


def _scrub(text: str, secret: str, headers: Mapping[str, str]) -> str:
    """Never let a credential reach an error message, even if Xsolla echoes one."""
    for value in (secret, *headers.values()):
        if value:
            text = text.replace(value, "***")
            text = text.replace(value.split(" ", 1)[-1], "***")
    return text[:_MAX_MESSAGE]


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _price(raw: Any) -> Price | None:
    if not isinstance(raw, dict):
        return None
    amount = _dec(raw.get("amount"))
    if amount is None:
        return None
    currency = raw.get("currency")
    return Price(
        amount=amount,
        amount_without_discount=_dec(raw.get("amount_without_discount")),
        currency=currency if isinstance(currency, str) else None,
    )


def _when(raw: Any) -> dt.datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _summary(row: Any) -> OrderSummary:
    if not isinstance(row, dict) or not _is_int(row.get("order_id")):
        raise ProviderError("Xsolla returned a malformed order in a search answer")
    invoice = row.get("invoice_id")
    return OrderSummary(
        order_id=int(row["order_id"]),
        project_id=int(row["project_id"]) if _is_int(row.get("project_id")) else None,
        status=str(row.get("status") or ""),
        mode=row.get("mode") if isinstance(row.get("mode"), str) else None,
        date_created=_when(row.get("date_created")),
        invoice_id=str(invoice) if invoice not in (None, "") else None,
        is_free=row.get("is_free") is True,
        price=_price(row.get("price")),
    )


def _obj(doc: Any, key: str) -> dict[str, Any]:
    value = doc.get(key) if isinstance(doc, dict) else None
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_transactions(doc: Any) -> tuple[TransactionRecord, ...]:
    """A list of report rows (a lone object is read as a list of one)."""
    rows = [doc] if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise ProviderError("Xsolla returned a malformed transaction search answer")
    return tuple(_transaction(row) for row in rows)


def _transaction(row: Any) -> TransactionRecord:
    tx = _obj(row, "transaction")
    tx_id = tx.get("id")
    status = tx.get("status")
    if not _is_int(tx_id) and not (isinstance(tx_id, str) and tx_id.isdigit()):
        raise ProviderError("Xsolla returned a transaction without an id")
    if not isinstance(status, str) or not status:
        raise ProviderError("Xsolla returned a transaction without a status")
    payment = _obj(_obj(row, "payment_details"), "payment")
    method = tx.get("payment_method")
    dry_run = tx.get("dry_run")
    currency = payment.get("currency")
    return TransactionRecord(
        id=str(tx_id),
        external_id=_text(tx.get("external_id")),
        status=status,
        project_id=_text(_obj(tx, "project").get("id")),
        user_id=_text(_obj(row, "user").get("id")),
        amount=_dec(payment.get("amount")),
        currency=currency.upper() if isinstance(currency, str) and currency else None,
        dry_run=None if dry_run is None else dry_run in (1, "1", True),
        payment_date=_when(tx.get("payment_date") or tx.get("create_date")),
        refund_reason=_text(tx.get("refund_reason")),
        payment_method=_text(method.get("name")) if isinstance(method, dict) else None,
        raw=json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode(),
    )


def _line(raw: dict[str, Any]) -> OrderLine:
    quantity = raw.get("quantity")
    return OrderLine(
        sku=str(raw.get("sku") or ""),
        quantity=int(quantity) if _is_int(quantity) else 0,
        is_free=raw.get("is_free") is True,
        price=_price(raw.get("price")),
    )


def paystation_url(token: str, *, sandbox: bool) -> str:
    """Where the buyer pays: Pay Station 4, sandbox or production, for a payment token."""
    host = "sandbox-secure.xsolla.com" if sandbox else "secure.xsolla.com"
    return f"https://{host}/paystation4/?{urlencode({'token': token})}"
