"""The orders API against localstripe, on both engines: creation (with its PaymentIntent),
idempotency, validation, Stripe outages, reading, listing, events and timelines."""

from __future__ import annotations

import dataclasses
import secrets
import threading
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import func, select
from starlette.testclient import TestClient
from tests.support.api import (
    Merchant,
    create_order,
    drain,
    new_merchant,
    order_body,
    order_meta,
    post_event,
    succeeded_event,
)
from tests.support.servers import free_port, live_caisse

from caisse.providers.stripe import simulate
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.web.app import create_app


def count(rt: Runtime, model: Any, *where: Any) -> int:
    with rt.db.read() as s:
        stmt = select(func.count()).select_from(model)
        for clause in where:
            stmt = stmt.where(clause)
        return int(s.execute(stmt).scalar_one())


def stripe_sdk(localstripe_url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_orders", base_addresses={"api": localstripe_url})


def intents_of(localstripe_url: str, tenant_id: str) -> list[Any]:
    """The PaymentIntents localstripe holds for one tenant (its store is shared by the run)."""
    listed = stripe_sdk(localstripe_url).v1.payment_intents.list(params={"limit": 100})
    return [
        pi
        for pi in listed.auto_paging_iter()
        if pi.to_dict().get("metadata", {}).get("caisse_tenant_id") == tenant_id
    ]


def post_order(
    client: Any, merchant: Merchant, body: dict[str, Any], key: str | None = None, env: str = "test"
) -> httpx.Response:
    headers = merchant.auth(env)
    if key is not None:
        headers["Idempotency-Key"] = key
    r: httpx.Response = client.post("/v1/orders", json=body, headers=headers)
    return r


@pytest.fixture
def merchant(client, rt) -> Merchant:  # type: ignore[no-untyped-def]
    return new_merchant(client, rt)


# -- creation ---------------------------------------------------------------------------------


def test_create_order_makes_its_payment_intent(client, rt, merchant, localstripe_url) -> None:  # type: ignore[no-untyped-def]
    body = order_body()
    body["lines"] = [
        {"description": "Chambre", "quantity": 2, "unit_amount": 8900, "tax_rate": "10"},
        {"description": "Taxe de séjour", "quantity": 3, "unit_amount": 165},
        {"sku": "BKF", "description": "Petit-déjeuner", "quantity": 1, "unit_amount": 1200},
    ]
    body["metadata"] = {"booking": "B-1"}
    r = post_order(client, merchant, body, key="k-" + secrets.token_hex(4))
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["id"].startswith("ord_")
    assert order["status"] == "open"
    assert order["livemode"] is False
    assert order["currency"] == "eur"
    assert order["amount_total"] == 2 * 8900 + 3 * 165 + 1200
    assert [li["amount"] for li in order["lines"]] == [17800, 495, 1200]
    assert order["metadata"] == {"booking": "B-1"}
    payment = order["payment"]
    assert payment["payment_intent"].startswith("pi_")
    assert payment["client_secret"].startswith(payment["payment_intent"] + "_secret_")
    with rt.db.read() as s:
        account = s.scalars(select(m.ProviderAccount)).one()
        row = s.get(m.Order, order["id"])
    assert payment["publishable_key"] == account.config["publishable_key"]
    assert row is not None
    assert payment["client_secret"] not in (row.provider_client_secret or "")  # encrypted

    pi = stripe_sdk(localstripe_url).v1.payment_intents.retrieve(payment["payment_intent"])
    assert pi.amount == order["amount_total"]
    assert pi.currency == "eur"
    assert pi.metadata["caisse_order_id"] == order["id"]
    assert pi.metadata["caisse_tenant_id"] == merchant.tenant_id
    assert pi.capture_method == "automatic"

    again = client.get(f"/v1/orders/{order['id']}", headers=merchant.auth())
    assert again.status_code == 200
    assert again.json() == order


def test_same_idempotency_key_and_body_replays_the_same_answer(
    client, rt, merchant, localstripe_url
) -> None:  # type: ignore[no-untyped-def]
    body, key = order_body(), "idem-" + secrets.token_hex(6)
    first = post_order(client, merchant, body, key)
    second = post_order(client, merchant, body, key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotency-key"] == key
    assert count(rt, m.Order) == 1
    assert len(intents_of(localstripe_url, merchant.tenant_id)) == 1

    changed = post_order(client, merchant, {**body, "reference": "OTHER"}, key)
    assert changed.status_code == 409
    assert changed.json()["error"]["param"] == "Idempotency-Key"
    assert count(rt, m.Order) == 1

    # keys are per environment and per tenant: the same key elsewhere is a new order
    other = new_merchant(client, rt, name="Other")
    assert post_order(client, other, body, key).json()["id"] != first.json()["id"]


def test_without_idempotency_key_each_request_is_a_new_order(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    body = order_body()
    a, b = post_order(client, merchant, body), post_order(client, merchant, body)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert "idempotency-key" not in a.headers


def test_concurrent_requests_with_one_key_make_one_order(rt, client, localstripe_url) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    body, key = order_body(), "race-" + secrets.token_hex(6)
    results: list[httpx.Response] = []
    with live_caisse(rt, run_worker=False) as live:
        barrier = threading.Barrier(6)

        def send() -> None:
            with httpx.Client(base_url=live.url, timeout=30) as http:
                barrier.wait()
                results.append(post_order(http, merchant, body, key))

        threads = [threading.Thread(target=send) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 6
    assert {r.status_code for r in results} <= {201, 409}, [r.text for r in results]
    created = [r.json() for r in results if r.status_code == 201]
    assert created, "one request must have created the order"
    assert all(c == created[0] for c in created)
    for r in results:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_conflict"
    assert count(rt, m.Order) == 1
    assert len(intents_of(localstripe_url, merchant.tenant_id)) == 1
    # once finished, the key replays
    assert post_order(client, merchant, body, key).json() == created[0]


# -- validation -------------------------------------------------------------------------------

LINE = {"description": "Item", "quantity": 1, "unit_amount": 1000}
INVALID: list[tuple[dict[str, Any], str | None]] = [
    ({"lines": []}, "lines"),
    ({"lines": [{**LINE, "unit_amount": -1}]}, "lines.0.unit_amount"),
    ({"lines": [{**LINE, "quantity": 0}]}, "lines.0.quantity"),
    ({"lines": [LINE, {**LINE, "tax_rate": "100"}]}, "lines.1.tax_rate"),
    ({"lines": [{**LINE, "tax_rate": "-1"}]}, "lines.0.tax_rate"),
    ({"lines": [{**LINE, "description": ""}]}, "lines.0.description"),
    ({"lines": [{**LINE, "colour": "red"}]}, "lines.0.colour"),
    ({"lines": [{**LINE, "unit_amount": 0}]}, "lines"),  # a total of zero
    ({"currency": "eu"}, "currency"),
    ({"currency": "e1r"}, "currency"),
    ({"currency": None}, "currency"),
    ({"capture_method": "later"}, "capture_method"),
    ({"customer": {"email": "not-an-email"}}, "customer.email"),
    ({"surprise": True}, "surprise"),
]


def test_invalid_orders_are_400_with_param_and_leave_nothing(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    for change, param in INVALID:
        body = {**order_body(), **change}
        r = post_order(client, merchant, body, key="v-" + secrets.token_hex(4))
        assert r.status_code == 400, (change, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
        assert r.json()["error"].get("param") == param, (change, r.json())

    for raw in (b"{not json", b"", b"[]", b'"order"'):
        r = client.post(
            "/v1/orders",
            content=raw,
            headers={**merchant.auth(), "Content-Type": "application/json"},
        )
        assert r.status_code == 400, raw
        assert r.json()["error"]["code"] == "invalid_request"

    r = post_order(client, merchant, order_body(), key="x" * 256)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "Idempotency-Key"
    assert count(rt, m.Order) == 0
    assert count(rt, m.IdempotencyKey) == 0


def test_order_needs_stripe_credentials_and_a_key(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/v1/orders", json=order_body()).status_code == 401
    r = post_order(client, merchant, order_body(), key="no-creds", env="live")
    assert r.status_code == 404
    assert "stripe" in r.json()["error"]["message"].lower()
    assert count(rt, m.Order) == 0
    assert count(rt, m.IdempotencyKey) == 0


def test_stripe_unreachable_is_502_and_the_same_key_resumes_the_same_order(
    client, rt, merchant, localstripe_url
) -> None:  # type: ignore[no-untyped-def]
    """The SDK cannot tell a refused connection from a lost answer, so the order and its key
    are kept for the retry (test_order_creation_outcomes.py has the lost-answer case)."""
    closed = f"http://127.0.0.1:{free_port()}"
    down = Runtime.build(dataclasses.replace(rt.settings, stripe_api_base=closed))
    body, key = order_body(), "outage-" + secrets.token_hex(4)
    try:
        with TestClient(create_app(runtime=down, run_worker=False)) as offline:
            r = post_order(offline, merchant, body, key)
            assert r.status_code in (502, 504), r.text
            assert r.json()["error"]["code"] in ("provider_unavailable", "provider_timeout")
            assert closed not in r.text
            assert count(rt, m.Order) == 1  # kept open, without an intent, for the retry
            assert count(rt, m.IdempotencyKey) == 1
            # Retried at once (no 409 "in progress"): still down, still the same order.
            assert post_order(offline, merchant, body, key).status_code in (502, 504)
            assert count(rt, m.Order) == 1
    finally:
        down.close()
    # Stripe is back: the same key now finishes the same order
    r = post_order(client, merchant, body, key)
    assert r.status_code == 201, r.text
    assert count(rt, m.Order) == 1
    assert len(intents_of(localstripe_url, merchant.tenant_id)) == 1


# -- reading and listing ----------------------------------------------------------------------


def pay(client: Any, rt: Runtime, merchant: Merchant, order: dict[str, Any]) -> dict[str, Any]:
    ev = succeeded_event(merchant, order)
    assert post_event(client, merchant, ev).status_code == 200
    drain(rt)
    return ev


def test_get_order_is_scoped_to_tenant_and_environment(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    order = create_order(client, merchant)
    assert client.get(f"/v1/orders/{order['id']}", headers=merchant.auth()).status_code == 200
    r = client.get(f"/v1/orders/{order['id']}", headers=merchant.auth("live"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert client.get("/v1/orders/ord_doesnotexist", headers=merchant.auth()).status_code == 404


def test_orders_list_paginates_newest_first_and_filters(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    made = [create_order(client, merchant, amount=1000 + i) for i in range(5)]
    ids = [o["id"] for o in made]
    newest_first = sorted(ids, reverse=True)
    auth = merchant.auth()

    def listing(**params: Any) -> dict[str, Any]:
        r = client.get("/v1/orders", headers=auth, params=params)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert body["object"] == "list"
        assert body["url"] == "/v1/orders"
        return body

    full = listing()
    assert [o["id"] for o in full["data"]] == newest_first
    assert full["has_more"] is False
    assert "client_secret" not in full["data"][0]["payment"]  # only on the order itself

    p1 = listing(limit=2)
    assert [o["id"] for o in p1["data"]] == newest_first[:2]
    assert p1["has_more"] is True
    p2 = listing(limit=2, starting_after=p1["data"][-1]["id"])
    assert [o["id"] for o in p2["data"]] == newest_first[2:4]
    assert p2["has_more"] is True
    p3 = listing(limit=2, starting_after=p2["data"][-1]["id"])
    assert [o["id"] for o in p3["data"]] == newest_first[4:]
    assert p3["has_more"] is False
    back = listing(limit=2, ending_before=p3["data"][0]["id"])
    assert [o["id"] for o in back["data"]] == newest_first[2:4]
    assert back["has_more"] is True
    top = listing(limit=2, ending_before=newest_first[1])
    assert [o["id"] for o in top["data"]] == newest_first[:1]
    assert top["has_more"] is False

    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "ten"}):
        r = client.get("/v1/orders", headers=auth, params=bad)
        assert r.status_code == 400, bad
        assert r.json()["error"]["param"] == "limit"
    r = client.get(
        "/v1/orders", headers=auth, params={"starting_after": ids[0], "ending_before": ids[1]}
    )
    assert r.status_code == 400

    pay(client, rt, merchant, made[2])
    paid = listing(status="paid")
    assert [o["id"] for o in paid["data"]] == [made[2]["id"]]
    assert len(listing(status="open")["data"]) == 4
    assert listing(reference=made[0]["reference"])["data"][0]["id"] == made[0]["id"]
    assert client.get("/v1/orders", headers=merchant.auth("live")).json()["data"] == []


def test_events_list_paginates_and_filters_by_order(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    a, b = create_order(client, merchant), create_order(client, merchant)
    meta_a, meta_b = order_meta(merchant, a), order_meta(merchant, b)
    pi_a, pi_b = a["payment"]["payment_intent"], b["payment"]["payment_intent"]
    sent = [
        simulate.build_event("payment_intent.created", livemode=False, payment_intent_id=pi_a,
                             amount=a["amount_total"], metadata=meta_a),
        simulate.build_event("payment_intent.created", livemode=False, payment_intent_id=pi_b,
                             amount=b["amount_total"], metadata=meta_b),
        simulate.build_event("payment_intent.succeeded", livemode=False, payment_intent_id=pi_a,
                             amount=a["amount_total"], metadata=meta_a),
    ]  # fmt: skip
    for ev in sent:
        assert post_event(client, merchant, ev).status_code == 200
    drain(rt)
    auth = merchant.auth()

    everything = client.get("/v1/events", headers=auth).json()
    assert everything["object"] == "list"
    assert len(everything["data"]) == 3
    ids = [e["id"] for e in everything["data"]]
    assert ids == sorted(ids, reverse=True)
    assert {e["status"] for e in everything["data"]} == {"processed"}
    assert "payload" not in everything["data"][0]

    p1 = client.get("/v1/events", headers=auth, params={"limit": 2}).json()
    assert [e["id"] for e in p1["data"]] == ids[:2]
    assert p1["has_more"] is True
    p2 = client.get("/v1/events", headers=auth, params={"limit": 2, "starting_after": ids[1]})
    assert [e["id"] for e in p2.json()["data"]] == ids[2:]
    assert p2.json()["has_more"] is False
    assert client.get("/v1/events", headers=auth, params={"limit": 500}).status_code == 400

    of_a = client.get("/v1/events", headers=auth, params={"order_id": a["id"]}).json()["data"]
    assert sorted(e["provider_event_id"] for e in of_a) == sorted([sent[0]["id"], sent[2]["id"]])
    assert all(e["order_id"] == a["id"] for e in of_a)
    of_type = client.get("/v1/events", headers=auth, params={"type": "payment_intent.created"})
    assert len(of_type.json()["data"]) == 2

    one = client.get(f"/v1/events/{ids[0]}", headers=auth)
    assert one.status_code == 200
    assert one.json()["payload"]["id"] == one.json()["provider_event_id"]
    assert client.get(f"/v1/events/{ids[0]}", headers=merchant.auth("live")).status_code == 404
    assert client.get("/v1/events", headers=merchant.auth("live")).json()["data"] == []


def test_timeline_tells_what_happened_in_order(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    order = create_order(client, merchant)
    first = client.get(f"/v1/orders/{order['id']}/timeline", headers=merchant.auth()).json()
    assert first["object"] == "list"
    assert [t["type"] for t in first["data"]] == ["order.created"]
    assert first["data"][0]["data"] == {"amount_total": order["amount_total"], "currency": "eur"}

    ev = pay(client, rt, merchant, order)
    timeline = client.get(f"/v1/orders/{order['id']}/timeline", headers=merchant.auth()).json()
    types = [t["type"] for t in timeline["data"]]
    assert types[0] == "order.created"
    assert "order.paid" in types
    paid = next(t for t in timeline["data"] if t["type"] == "order.paid")
    with rt.db.read() as s:
        stored = s.scalars(select(m.InboundEvent.id)).one()
    assert paid["source_event"] in (stored, ev["id"])
    assert [t["created"] for t in timeline["data"]] == sorted(
        t["created"] for t in timeline["data"]
    )
    r = client.get(f"/v1/orders/{order['id']}/timeline", headers=merchant.auth("live"))
    assert r.status_code == 404


@pytest.mark.parametrize(
    "where",
    ["customer_name", "customer_extra_key", "line_description", "metadata", "reference"],
)
def test_a_nul_character_anywhere_is_a_400_on_both_engines(client, rt, merchant, where) -> None:  # type: ignore[no-untyped-def]
    body = order_body()
    if where == "customer_name":
        body["customer"]["name"] = "Bu\x00yer"
    elif where == "customer_extra_key":
        body["customer"]["no\x00te"] = "x"
    elif where == "line_description":
        body["lines"][0]["description"] = "Item\x00"
    elif where == "metadata":
        body["metadata"] = {"k": "v\x00"}
    else:
        body["reference"] = "\x00"
    r = post_order(client, merchant, body, key="nul-" + where)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_request"
    assert "NUL" in r.json()["error"]["message"]
    assert count(rt, m.Order) == 0
