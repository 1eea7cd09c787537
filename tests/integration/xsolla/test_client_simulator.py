"""XsollaClient against the Xsolla simulator served on loopback, and the simulator's webhooks.

Cases T5–T8 of research/xsolla-firebase.md §6 at the client level: success, bad auth, Xsolla's
422 answers, 5xx, network failure and timeout.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from caisse.clock import FrozenClock
from caisse.errors import (
    InvalidRequest,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from caisse.providers.xsolla import signature, webhooks
from caisse.providers.xsolla.client import (
    TokenResult,
    XsollaClient,
    XsollaRejected,
    paystation_url,
)
from caisse.providers.xsolla.simulator import (
    RETRY_DELAYS,
    SimProject,
    SimulatorState,
    WebhookSender,
    classify,
    create_simulator_app,
)

pytestmark = pytest.mark.anyio

PROJECT_ID = 44056
API_KEY = "sim-api-key-0123456789abcdef"
WEBHOOK_SECRET = "sim-webhook-secret"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class Served:
    """One simulator app per module; the state it serves is swapped for every test."""

    state: SimulatorState
    url: str


@pytest.fixture(scope="module")
def served(loopback: Callable[[ASGIApp], str]) -> Served:
    holder = Served(state=SimulatorState(), url="")

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await create_simulator_app(holder.state)(scope, receive, send)

    holder.url = loopback(app)
    return holder


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def state(served: Served, clock: FrozenClock) -> SimulatorState:
    project = SimProject(project_id=PROJECT_ID, api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    project.add_item("gems_500", Decimal("4.99"))
    project.add_item("sword_01", Decimal("1.99"), "EUR")
    project.add_item("free_hat", Decimal("0"))
    served.state = SimulatorState([project], clock=clock)
    return served.state


@pytest.fixture
async def client(served: Served, state: SimulatorState) -> AsyncIterator[XsollaClient]:
    async with httpx.AsyncClient() as http:
        yield XsollaClient(served.url, http=http, timeout=2)


async def token(client: XsollaClient, **overrides: object) -> TokenResult:
    args: dict[str, object] = {
        "user_id": "firebase-uid-1",
        "user_email": "player@example.com",
        "sku": "gems_500",
        "quantity": 2,
        "sandbox": True,
        "external_id": "ord_123",
        "user_ip": "203.0.113.7",
        "return_url": "https://game.example/after-payment",
        "currency": "USD",
    }
    args.update(overrides)
    return await client.create_payment_token(PROJECT_ID, API_KEY, **args)  # type: ignore[arg-type]


# Token ------------------------------------------------------------------------------------------


async def test_create_payment_token(client: XsollaClient, state: SimulatorState) -> None:
    result = await token(client)
    assert len(result.token) == 32
    assert result.token.isalnum()
    order = state.orders[result.xsolla_order_id]
    assert order.status == "new"
    assert order.user_id == "firebase-uid-1"
    assert order.external_id == "ord_123"
    assert order.sandbox is True
    assert order.amount == Decimal("9.98")
    assert order.user_ip == "203.0.113.7"

    (request,) = state.requests
    assert request.path == f"/api/v3/project/{PROJECT_ID}/admin/payment/token"
    expected = base64.b64encode(f"{PROJECT_ID}:{API_KEY}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert request.headers["x-user-ip"] == "203.0.113.7"
    body = request.json()
    assert body["user"]["id"] == {"value": "firebase-uid-1"}
    assert body["user"]["email"] == {"value": "player@example.com"}
    assert body["purchase"] == {"items": [{"sku": "gems_500", "quantity": 2}]}
    assert body["sandbox"] is True
    assert body["settings"] == {
        "external_id": "ord_123",
        "currency": "USD",
        "return_url": "https://game.example/after-payment",
    }


async def test_token_with_country_instead_of_ip(
    client: XsollaClient, state: SimulatorState
) -> None:
    result = await token(client, user_ip=None, country="de", sandbox=False, currency=None)
    order = state.orders[result.xsolla_order_id]
    assert order.country == "DE"
    assert order.mode == "default"
    assert "x-user-ip" not in state.requests[0].headers


def test_paystation_urls() -> None:
    assert (
        paystation_url("abc", sandbox=True)
        == "https://sandbox-secure.xsolla.com/paystation4/?token=abc"
    )
    assert (
        paystation_url("abc", sandbox=False) == "https://secure.xsolla.com/paystation4/?token=abc"
    )


@pytest.mark.parametrize(
    ("project", "key"),
    [
        pytest.param(PROJECT_ID, "wrong-key", id="wrong-key"),
        pytest.param(99999, API_KEY, id="unknown-project"),
    ],
)
async def test_bad_auth_is_rejected_without_leaking_the_key(
    client: XsollaClient, caplog: pytest.LogCaptureFixture, project: int, key: str
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(XsollaRejected) as info:
        await client.create_payment_token(
            project,
            key,
            user_id="u",
            sku="gems_500",
            sandbox=True,
            external_id="o",
            user_ip="1.2.3.4",
        )
    err = info.value
    assert isinstance(err, ProviderRejected)
    assert err.status_code == 401
    assert err.error_code == 1020
    assert "1020" in str(err)
    for secret in (key, base64.b64encode(f"{project}:{key}".encode()).decode()):
        assert secret not in str(err)
        assert secret not in repr(err)
        assert secret not in caplog.text
    assert err.__cause__ is None


async def test_missing_country_and_ip_is_422_1102(client: XsollaClient) -> None:
    with pytest.raises(XsollaRejected) as info:
        await token(client, user_ip=None)
    assert (info.value.status_code, info.value.error_code) == (422, 1102)
    assert "X-User-Ip" in str(info.value)


async def test_unknown_sku_is_422_1417(client: XsollaClient, state: SimulatorState) -> None:
    with pytest.raises(XsollaRejected) as info:
        await token(client, sku="not_in_catalog")
    assert (info.value.status_code, info.value.error_code) == (422, 1417)
    assert state.orders == {}


async def test_free_item_is_422_1421(client: XsollaClient, state: SimulatorState) -> None:
    with pytest.raises(XsollaRejected) as info:
        await token(client, sku="free_hat")
    assert (info.value.status_code, info.value.error_code) == (422, 1421)
    assert state.orders == {}


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"quantity": 0}, id="quantity-zero"),
        pytest.param({"sku": "bad sku!"}, id="sku-pattern"),
        pytest.param({"user_id": ""}, id="empty-user"),
        pytest.param({"user_email": "not-an-email"}, id="bad-email"),
        pytest.param({"return_url": "https://x.example/" + "a" * 1000}, id="long-return-url"),
        pytest.param({"external_id": ""}, id="empty-external-id"),
    ],
)
async def test_invalid_bodies_are_422_1102(
    client: XsollaClient, overrides: dict[str, object]
) -> None:
    with pytest.raises(XsollaRejected) as info:
        await token(client, **overrides)
    assert (info.value.status_code, info.value.error_code) == (422, 1102)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_provider_unavailable(
    client: XsollaClient, state: SimulatorState, status: int
) -> None:
    state.fail_next(status)
    with pytest.raises(ProviderUnavailable) as info:
        await token(client)
    assert not isinstance(info.value, ProviderTimeout)
    assert API_KEY not in str(info.value)
    assert (await token(client)).token  # the next call goes through


async def test_timeout_is_provider_timeout(served: Served, state: SimulatorState) -> None:
    state.delay = 1.0
    async with httpx.AsyncClient() as http:
        slow = XsollaClient(served.url, http=http, timeout=0.2)
        with pytest.raises(ProviderTimeout) as info:
            await token(slow)
    assert API_KEY not in str(info.value)
    assert info.value.__cause__ is None


async def test_connection_refused_is_provider_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as http:
        down = XsollaClient(f"http://127.0.0.1:{port}", http=http, timeout=2)
        with pytest.raises(ProviderUnavailable) as info:
            await token(down)
    assert API_KEY not in str(info.value)


async def test_client_validates_project_id_before_calling(
    client: XsollaClient, state: SimulatorState
) -> None:
    with pytest.raises(InvalidRequest):
        await client.create_payment_token(
            "44056/../other", API_KEY, user_id="u", sku="s", sandbox=True, external_id="o"
        )
    assert state.requests == []


# A misbehaving Xsolla ---------------------------------------------------------------------------


@dataclass
class Canned:
    status: int
    body: bytes
    seen: list[str] = field(default_factory=list)

    def app(self) -> ASGIApp:
        async def any_path(request: Request) -> Response:
            self.seen.append(request.url.path)
            return Response(self.body, status_code=self.status, media_type="application/json")

        return Starlette(routes=[Route("/{path:path}", any_path, methods=["GET", "POST"])])


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        pytest.param(200, b"<html>", "ProviderError", id="not-json"),
        pytest.param(201, b'{"token": "", "order_id": 1}', "ProviderError", id="empty-token"),
        pytest.param(
            201, b'{"token": "t", "order_id": "1"}', "ProviderError", id="string-order-id"
        ),
        pytest.param(400, b"not json", "XsollaRejected", id="4xx-not-json"),
        pytest.param(
            422,
            b'{"statusCode":422,"errorCode":1102,'
            b'"errorMessage":"[0401-1102]: key sim-api-key-0123456789abcdef"}',
            "XsollaRejected",
            id="4xx-echoing-the-key",
        ),
    ],
)
async def test_malformed_answers(
    loopback: Callable[[ASGIApp], str], status: int, body: bytes, error: str
) -> None:
    url = loopback(Canned(status, body).app())
    async with httpx.AsyncClient() as http:
        client = XsollaClient(url, http=http)
        with pytest.raises(Exception) as info:
            await token(client)
    assert type(info.value).__name__ == error
    assert API_KEY not in str(info.value)


# Order search and get-order ---------------------------------------------------------------------


async def test_search_orders_pages_and_filters(
    client: XsollaClient, state: SimulatorState, clock: FrozenClock
) -> None:
    ids = []
    for _ in range(12):
        ids.append((await token(client)).xsolla_order_id)
        clock.advance(60)
    first = await client.search_orders(PROJECT_ID, API_KEY, limit=10)
    assert [o.order_id for o in first.orders] == ids[:10]
    assert first.has_more is True
    second = await client.search_orders(PROJECT_ID, API_KEY, limit=10, offset=10)
    assert [o.order_id for o in second.orders] == ids[10:]
    assert second.has_more is False
    window = await client.search_orders(
        PROJECT_ID,
        API_KEY,
        created_from=NOW + dt.timedelta(minutes=2),
        created_until=NOW + dt.timedelta(minutes=4),
    )
    assert [o.order_id for o in window.orders] == ids[2:5]
    row = window.orders[0]
    assert row.status == "new"
    assert row.sandbox is True
    assert row.price is not None
    assert row.price.amount == Decimal("9.98")
    assert row.price.currency == "USD"
    assert row.date_created == NOW + dt.timedelta(minutes=2)


async def test_search_orders_bad_auth_and_limit(client: XsollaClient) -> None:
    with pytest.raises(XsollaRejected) as info:
        await client.search_orders(PROJECT_ID, "nope")
    assert info.value.status_code == 401
    with pytest.raises(XsollaRejected) as info:
        await client.search_orders(PROJECT_ID, API_KEY, limit=50)
    assert (info.value.status_code, info.value.error_code) == (422, 1102)


async def test_get_order_follows_the_life_cycle(
    client: XsollaClient, state: SimulatorState, served: Served
) -> None:
    result = await token(client)
    order = await client.get_order(PROJECT_ID, result.xsolla_order_id, token=result.token)
    assert (order.order_id, order.status) == (result.xsolla_order_id, "new")
    assert order.price is not None
    assert order.price.amount == Decimal("9.98")
    assert [(line.sku, line.quantity) for line in order.items] == [("gems_500", 2)]
    state.pay(result.xsolla_order_id)
    assert (
        await client.get_order(PROJECT_ID, result.xsolla_order_id, token=result.token)
    ).status == "paid"
    state.complete(result.xsolla_order_id)
    assert (
        await client.get_order(PROJECT_ID, result.xsolla_order_id, token=result.token)
    ).status == "done"


async def test_get_order_needs_that_orders_token(client: XsollaClient) -> None:
    mine = await token(client)
    theirs = await token(client, user_id="someone-else")
    with pytest.raises(XsollaRejected) as info:
        await client.get_order(PROJECT_ID, theirs.xsolla_order_id, token=mine.token)
    assert (info.value.status_code, info.value.error_code) == (404, 9001)
    with pytest.raises(XsollaRejected) as info:
        await client.get_order(PROJECT_ID, mine.xsolla_order_id, token="forged")
    assert info.value.status_code == 401


async def test_unpaid_order_expires_with_its_token(
    client: XsollaClient, state: SimulatorState, clock: FrozenClock
) -> None:
    result = await token(client)
    clock.advance(24 * 3600 + 1)
    (row,) = (await client.search_orders(PROJECT_ID, API_KEY)).orders
    assert row.status == "expired"
    with pytest.raises(XsollaRejected):
        await client.get_order(PROJECT_ID, result.xsolla_order_id, token=result.token)


# Webhooks from the simulator --------------------------------------------------------------------


@dataclass
class Receiver:
    """A merchant webhook endpoint that checks signatures the way caisse will."""

    secret: str
    answer: int = 204
    answers: dict[str, int] = field(default_factory=dict)  # per message class name
    refuse_users: set[str] = field(default_factory=set)
    received: list[webhooks.XsollaNotification] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def app(self) -> ASGIApp:
        async def hook(request: Request) -> Response:
            body = await request.body()
            self.bodies.append(body)
            try:
                signature.verify(body, request.headers.get("authorization"), self.secret)
            except Exception:
                return _json(400, webhooks.INVALID_SIGNATURE)
            message = webhooks.parse(body)
            self.received.append(message)
            if (
                isinstance(message, webhooks.UserValidation)
                and message.user_id in self.refuse_users
            ):
                return _json(400, webhooks.INVALID_USER)
            return Response(status_code=self.answers.get(type(message).__name__, self.answer))

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def _json(status: int, code: str) -> Response:
    return Response(json.dumps(webhooks.error_body(code, code.lower())), status_code=status)


@pytest.fixture(scope="module")
def receiver_url(loopback: Callable[[ASGIApp], str]) -> tuple[Receiver, str]:
    holder: dict[str, Receiver] = {}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await holder["r"].app()(scope, receive, send)

    base = loopback(app)
    holder["r"] = Receiver(WEBHOOK_SECRET)
    return holder["r"], base + "/hook"


@pytest.fixture
async def receiver(
    receiver_url: tuple[Receiver, str],
) -> AsyncIterator[tuple[Receiver, WebhookSender]]:
    recv, url = receiver_url
    recv.answer = 204
    recv.answers.clear()
    recv.refuse_users.clear()
    recv.received.clear()
    recv.bodies.clear()
    async with httpx.AsyncClient() as http:
        yield recv, WebhookSender(url, WEBHOOK_SECRET, http=http)


async def test_combined_purchase_flow(
    client: XsollaClient, state: SimulatorState, receiver: tuple[Receiver, WebhookSender]
) -> None:
    recv, sender = receiver
    result = await token(client)
    outcomes = await sender.purchase(state, result.xsolla_order_id)
    assert [r.outcome for r in outcomes] == ["delivered", "delivered"]
    assert [type(m).__name__ for m in recv.received] == ["UserValidation", "OrderPaid"]
    paid = recv.received[1]
    assert isinstance(paid, webhooks.OrderPaid)
    assert paid.order_id == result.xsolla_order_id
    assert paid.user_id == "firebase-uid-1"
    assert paid.external_id == "ord_123"
    assert paid.total == webhooks.Amount(Decimal("9.98"), "USD")
    assert paid.is_test is True
    assert state.orders[result.xsolla_order_id].status == "done"

    refunds = await sender.refund(state, result.xsolla_order_id)
    assert [r.outcome for r in refunds] == ["delivered"]
    canceled = recv.received[-1]
    assert isinstance(canceled, webhooks.OrderCanceled)
    assert canceled.transaction_id == paid.transaction_id


async def test_separate_mode_sends_payment_then_order_paid(
    client: XsollaClient, state: SimulatorState, receiver: tuple[Receiver, WebhookSender]
) -> None:
    recv, sender = receiver
    state.projects[PROJECT_ID].combined_webhooks = False
    result = await token(client, sandbox=False)
    await sender.purchase(state, result.xsolla_order_id)
    await sender.refund(state, result.xsolla_order_id, code=2)
    kinds = [type(m).__name__ for m in recv.received]
    assert kinds == ["UserValidation", "Payment", "OrderPaid", "Refund", "OrderCanceled"]
    payment, paid, refund = recv.received[1], recv.received[2], recv.received[3]
    assert isinstance(payment, webhooks.Payment)
    assert isinstance(paid, webhooks.OrderPaid)
    assert isinstance(refund, webhooks.Refund)
    assert payment.dry_run is False
    assert payment.transaction.external_id == "ord_123"
    assert paid.transaction is None
    assert paid.transaction_id == payment.transaction_id
    assert refund.code == 2


async def test_refused_user_validation_stops_the_payment(
    client: XsollaClient, state: SimulatorState, receiver: tuple[Receiver, WebhookSender]
) -> None:
    recv, sender = receiver
    recv.refuse_users.add("firebase-uid-1")
    result = await token(client)
    outcomes = await sender.purchase(state, result.xsolla_order_id)
    assert [(r.status_code, r.outcome) for r in outcomes] == [(400, "refused")]
    assert state.orders[result.xsolla_order_id].status == "new"


async def test_failing_order_paid_leaves_the_order_paid_not_done(
    client: XsollaClient, state: SimulatorState, receiver: tuple[Receiver, WebhookSender]
) -> None:
    recv, sender = receiver
    recv.answers["OrderPaid"] = 503
    result = await token(client)
    outcomes = await sender.purchase(state, result.xsolla_order_id)
    assert outcomes[-1].outcome == "retry"
    assert state.orders[result.xsolla_order_id].status == "paid"


async def test_bad_signatures_are_refused_by_a_correct_receiver(
    receiver: tuple[Receiver, WebhookSender], state: SimulatorState
) -> None:
    _, sender = receiver
    body = b'{"notification_type":"user_validation","user":{"id":"u"}}'
    assert (await sender.send_raw(body)).status_code == 204
    for header in (None, "Signature " + "0" * 40, "INVALID_FORMAT"):
        result = await sender.send_raw(body, sign=False, authorization=header)
        assert (result.status_code, result.outcome) == (400, "refused")
        assert b"INVALID_SIGNATURE" in result.body


async def test_sender_signs_the_exact_bytes_it_sends(
    receiver: tuple[Receiver, WebhookSender],
) -> None:
    recv, sender = receiver
    payload = {"notification_type": "user_validation", "user": {"id": "Zoë"}}
    await sender.send(payload)
    assert recv.bodies[-1] == '{"notification_type":"user_validation","user":{"id":"Zoë"}}'.encode()


async def test_unreachable_webhook_url_is_a_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as http:
        sender = WebhookSender(f"http://127.0.0.1:{port}/hook", WEBHOOK_SECRET, http=http)
        result = await sender.send({"notification_type": "user_validation", "user": {"id": "u"}})
    assert (result.status_code, result.outcome) == (None, "retry")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "delivered"), (201, "delivered"), (204, "delivered"), (202, "retry"),
     (400, "refused"), (401, "refused"), (402, "refused"), (403, "refused"), (404, "refused"),
     (409, "refused"), (415, "refused"), (422, "refused"), (410, "retry"), (429, "retry"),
     (500, "retry"), (503, "retry"), (None, "retry")],
)  # fmt: skip
def test_answer_classification_follows_xsolla(status: int | None, outcome: str) -> None:
    assert classify(status) == outcome


def test_retry_schedule() -> None:
    assert len(RETRY_DELAYS) == 19
    assert sum(RETRY_DELAYS, dt.timedelta()) == dt.timedelta(minutes=2 * 5 + 7 * 15 + 10 * 60)
