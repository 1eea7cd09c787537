"""``POST /v1/orders`` when the Stripe call's outcome is unknown or refused.

Stripe (localstripe) sits behind a real loopback proxy that forwards every call but can lose
the answer to PaymentIntent creations, as a dropped connection or a timeout would: Stripe made
the intent, caisse never heard. A retry with the same ``Idempotency-Key`` must resume the same
order and send Stripe the same idempotency key, so Stripe can never make a second intent.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import func, select
from tests.support.api import new_merchant, order_body

from caisse.providers.stripe.client import StripeGateway
from caisse.storage import models as m


@dataclass
class LossyStripe:
    """Forwards to localstripe; loses the answer of the next ``lose`` PaymentIntent creations
    (after forwarding them, so Stripe did make them), or answers them with Stripe's own 400
    ``invalid_request_error`` when ``refuse`` is set (Stripe made nothing)."""

    upstream: str
    lose: int = 0
    refuse: bool = False
    keys: list[str] = field(default_factory=list)
    url: str = ""

    def serve(self) -> Iterator[LossyStripe]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                creating = self.command == "POST" and self.path == "/v1/payment_intents"
                if creating and proxy.refuse:
                    proxy.keys.append(self.headers.get("Idempotency-Key", ""))
                    error = (
                        b'{"error": {"type": "invalid_request_error",'
                        b' "code": "amount_too_large", "param": "amount",'
                        b' "message": "Amount must be no more than $999,999.99"}}'
                    )
                    self.send_response(400)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                r = httpx.request(
                    self.command, proxy.upstream + self.path, content=body, headers=headers
                )
                if creating:
                    proxy.keys.append(self.headers.get("Idempotency-Key", ""))
                    if proxy.lose > 0:
                        proxy.lose -= 1
                        self.close_connection = True  # Stripe made it; the answer is lost
                        return
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_DELETE(self) -> None:
                self._forward()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture
def lossy(rt, localstripe_url) -> Iterator[LossyStripe]:  # type: ignore[no-untyped-def]
    proxy = LossyStripe(localstripe_url)
    served = proxy.serve()
    yield_ = next(served)
    base = yield_.url
    rt.stripe_factory = lambda key, account: StripeGateway(key, api_base=base, account=account)
    yield yield_
    served.close()


def orders_in_db(rt) -> int:  # type: ignore[no-untyped-def]
    with rt.db.read() as s:
        return int(s.execute(select(func.count()).select_from(m.Order)).scalar_one())


def test_a_lost_answer_is_resumed_by_the_same_key_with_the_same_stripe_key(client, rt, lossy):
    merchant = new_merchant(client, rt)
    headers = {**merchant.auth("test"), "Idempotency-Key": "checkout-42"}
    body = order_body(2500)
    lossy.lose = 3  # the first try and the SDK's two retries all lose their answer

    first = client.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == 502, first.text  # connection lost: ProviderUnavailable
    assert "error" in first.json()
    assert orders_in_db(rt) == 1  # kept, waiting for the retry

    second = client.post("/v1/orders", json=body, headers=headers)  # at once, no 409
    assert second.status_code == 201, second.text
    order = second.json()
    assert order["payment"]["payment_intent"].startswith("pi_")
    assert orders_in_db(rt) == 1  # the same order, resumed
    # Every creation Stripe saw, lost or not, carried one and the same idempotency key.
    assert len(lossy.keys) == 4
    assert set(lossy.keys) == {f"caisse-order-{order['id']}"}

    replay = client.post("/v1/orders", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.json() == order
    assert len(lossy.keys) == 4  # a replay does not call Stripe


def test_a_lost_answer_without_a_key_leaves_no_order_behind(client, rt, lossy):
    merchant = new_merchant(client, rt)
    lossy.lose = 3
    r = client.post("/v1/orders", json=order_body(2500), headers=merchant.auth("test"))
    assert r.status_code in (502, 503, 504)
    assert orders_in_db(rt) == 0  # nobody can resume it: nothing is kept


def test_a_refusal_by_stripe_drops_the_order_and_releases_the_key(client, rt, lossy):
    merchant = new_merchant(client, rt)
    headers = {**merchant.auth("test"), "Idempotency-Key": "refused-then-fixed"}
    lossy.refuse = True
    refused = client.post("/v1/orders", json=order_body(2500), headers=headers)
    assert refused.status_code == 402, refused.text  # Stripe refused: ProviderRejected
    assert refused.json()["error"]["code"]
    assert len(lossy.keys) == 1  # a 400 is final: the SDK does not retry it
    assert orders_in_db(rt) == 0
    # Nothing happened at Stripe, so the key is free again, even with another body.
    lossy.refuse = False
    fixed = client.post("/v1/orders", json=order_body(1500), headers=headers)
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["amount_total"] == 1500
