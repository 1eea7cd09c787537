"""Xsolla webhooks end to end: the simulator's signed notifications sent to a live caisse, the
order moving through the same states and partner messages as a Stripe order, entitlements
granted once and revoked; signature and business refusals (cases W1–W18)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
from tests.functional.xsolla.conftest import PROJECT_ID, WEBHOOK_SECRET, Game

from caisse.providers.xsolla.signature import authorization_header, sign
from caisse.providers.xsolla.simulator import (
    SimItem,
    WebhookSender,
    build_order_canceled,
    build_order_paid,
    build_user_validation,
    encode,
)
from caisse.storage import models as m


def post(game: Game, body: bytes, authorization: str | None = "sign") -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if authorization == "sign":
        authorization = authorization_header(body, WEBHOOK_SECRET)
    if authorization is not None:
        headers["Authorization"] = authorization
    return game.http.post(f"/callbacks/v1.0/xsolla/{game.tenant_id}", content=body, headers=headers)


def bought(game: Game, uid: str = "player-1", **body: Any) -> dict[str, Any]:
    r = game.buy(uid, **body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def count(game: Game, model: Any, **where: Any) -> int:
    with game.rt.db.read() as s:
        return int(s.query(model).filter_by(**where).count())


def player_order(game: Game, order_id: str, uid: str = "player-1") -> dict[str, Any]:
    r = game.http.get(
        f"/v1/xsolla/{game.tenant_id}/orders/{order_id}?mode=test", headers=game.player(uid)
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_purchase_and_refund_end_to_end(game: Game) -> None:
    order = bought(game, quantity=2)
    xid = order["xsolla_order_id"]
    sender = WebhookSender(f"{game.url}/callbacks/v1.0/xsolla/{game.tenant_id}", WEBHOOK_SECRET)

    async def purchase() -> list[Any]:
        try:
            return await sender.purchase(game.sim, xid)
        finally:
            await sender.aclose()

    results = anyio.run(purchase)
    assert [(r.status_code, r.body) for r in results] == [(204, b""), (204, b"")]
    assert game.sim.orders[xid].status == "done"

    view = player_order(game, order["order_id"])
    assert view["status"] == "done"
    assert [(e["sku"], e["quantity"], e["status"]) for e in view["entitlements"]] == [
        ("gems_500", 2, "granted")
    ]
    tenant = game.http.get(f"/v1/orders/{order['order_id']}", headers=game.auth()).json()
    assert tenant["status"] == "paid"
    assert tenant["amount_paid"] == 998
    assert tenant["payments"][0]["provider"] == "xsolla"
    with game.rt.db.read() as s:
        (msg,) = s.query(m.Message).filter_by(order_id=order["order_id"]).all()
        assert msg.type == "order.paid"
        assert msg.environment == "test"
        assert msg.payload["data"]["order"]["id"] == order["order_id"]
        event = s.query(m.InboundEvent).filter_by(provider="xsolla").one()
        assert event.status == "processed"
        assert event.order_id == order["order_id"]
        assert event.provider_event_id == f"order_paid:{xid}"

    # W12: the same order_paid again (Xsolla resends for up to 48 h): 204, nothing twice.
    again = post(game, encode(game.sim.order_payload(xid)))
    assert again.status_code == 204
    assert count(game, m.Entitlement) == 1
    assert count(game, m.Message, order_id=order["order_id"]) == 1
    assert count(game, m.InboundEvent) == 1

    player_ents = game.http.get(
        f"/v1/xsolla/{game.tenant_id}/entitlements?mode=test", headers=game.player("player-1")
    ).json()
    assert [e["status"] for e in player_ents["data"]] == ["granted"]
    assert (
        game.http.get(
            f"/v1/xsolla/{game.tenant_id}/entitlements?mode=test", headers=game.player("other")
        ).json()["data"]
        == []
    )

    sender = WebhookSender(f"{game.url}/callbacks/v1.0/xsolla/{game.tenant_id}", WEBHOOK_SECRET)

    async def refund() -> list[Any]:
        try:
            return await sender.refund(game.sim, xid, code=2)
        finally:
            await sender.aclose()

    assert [r.status_code for r in anyio.run(refund)] == [204]
    view = player_order(game, order["order_id"])
    assert view["status"] == "canceled"
    assert view["entitlements"][0]["status"] == "revoked"
    tenant = game.http.get(f"/v1/orders/{order['order_id']}", headers=game.auth()).json()
    assert tenant["status"] == "refunded"
    assert tenant["amount_refunded"] == 998
    with game.rt.db.read() as s:
        types = [x.type for x in s.query(m.Message).order_by(m.Message.id)]
    assert types == ["order.paid", "order.refunded"]
    listing = game.http.get("/v1/entitlements?user_id=player-1", headers=game.auth()).json()
    assert [(e["user_id"], e["status"]) for e in listing["data"]] == [("player-1", "revoked")]
    assert game.http.get("/v1/entitlements", headers=game.auth("live")).json()["data"] == []


def test_separate_mode_payment_is_recorded_and_order_paid_grants_once(game: Game) -> None:
    game.sim.projects[PROJECT_ID].combined_webhooks = False
    order = bought(game)
    xid = order["xsolla_order_id"]
    uv = post(game, encode(game.sim.user_validation_payload(xid)))
    assert uv.status_code == 204
    game.sim.pay(xid)
    assert post(game, encode(game.sim.payment_payload(xid))).status_code == 204
    assert count(game, m.Entitlement) == 0
    assert player_order(game, order["order_id"])["status"] == "new"
    paid = encode(game.sim.order_payload(xid))
    assert "billing" not in json.loads(paid)
    assert post(game, paid).status_code == 204
    assert post(game, paid).status_code == 204
    assert count(game, m.Entitlement, status="granted") == 1
    assert player_order(game, order["order_id"])["status"] == "done"
    game.sim.cancel(xid)
    refund = encode(game.sim.payment_payload(xid, refund=True, refund_code=1))
    canceled = encode(game.sim.order_payload(xid, kind="order_canceled"))
    for body in (refund, canceled, refund):
        assert post(game, body).status_code == 204
    assert count(game, m.Entitlement, status="revoked") == 1
    with game.rt.db.read() as s:
        assert [x.type for x in s.query(m.Message).order_by(m.Message.id)] == [
            "order.paid",
            "order.refunded",
        ]


def test_signature_rules_on_the_raw_bytes(game: Game) -> None:
    payload = build_user_validation(user_id="player-1", project_id=PROJECT_ID)
    compact = encode(payload)
    spaced = json.dumps(payload, indent=2).encode()
    good = sign(spaced, WEBHOOK_SECRET)
    bad_headers = [
        None,
        "INVALID_FORMAT",
        "Signature",
        f"Bearer {good}",
        f"Signature {good[:-1]}",
        f"Signature {good}0",
        f"Signature {good[:-1]}g",
        f"Signature {good} extra",
        f"Signature  {good}",
        "Signature " + hashlib.sha1(WEBHOOK_SECRET.encode() + spaced).hexdigest(),
        "Signature " + hmac.new(WEBHOOK_SECRET.encode(), spaced, hashlib.sha1).hexdigest(),
        "Signature " + sign(spaced, "another-secret"),
    ]
    for header in bad_headers:
        r = post(game, spaced, header)
        assert r.status_code == 400, header
        assert r.json()["error"]["code"] == "INVALID_SIGNATURE"
    # The compact form of the same document does not carry the spaced form's signature.
    assert post(game, compact, f"Signature {good}").status_code == 400
    # Header name and hex case do not matter; UTF-8 bodies are hashed as bytes.
    order = bought(game)
    del order
    ok = game.http.post(
        f"/callbacks/v1.0/xsolla/{game.tenant_id}",
        content=spaced,
        headers={"authorization": f"signature {good.upper()}"},
    )
    assert ok.status_code == 204
    utf8 = encode(
        build_user_validation(user_id="player-1", project_id=PROJECT_ID, email="zoë@ex.fr")
    )
    escaped = json.dumps(json.loads(utf8), separators=(",", ":")).encode()
    assert utf8 != escaped
    assert post(game, utf8).status_code == 204
    assert post(game, escaped, f"Signature {sign(utf8, WEBHOOK_SECRET)}").status_code == 400
    # Correctly signed but not JSON, or without a type: INVALID_PARAMETER; unknown type: 204.
    for body in (b"INVALID_REQUEST_CONTENT", b'{"foo":"bar"}'):
        r = post(game, body)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "INVALID_PARAMETER"
    assert post(game, b'{"notification_type":"afs_reject","x":1}').status_code == 204
    with game.rt.db.read() as s:
        (stored,) = s.query(m.InboundEvent).all()  # only the acknowledged unknown type
        assert stored.status == "ignored"
        assert stored.type == "afs_reject"
    assert post(game, b"{" + b" " * (1024 * 1024) + b"}").status_code == 413
    assert game.http.post(
        "/callbacks/v1.0/xsolla/ten_nope", content=compact,
        headers={"Authorization": f"Signature {sign(compact, WEBHOOK_SECRET)}"},
    ).status_code == 404  # fmt: skip


def paid_body(game: Game, order: dict[str, Any], **overrides: Any) -> bytes:
    xo = game.sim.orders[order["xsolla_order_id"]]
    fields: dict[str, Any] = {
        "order_id": xo.order_id,
        "user_id": xo.user_id,
        "items": xo.items,
        "currency": "USD",
        "transaction_id": 2_100_000_777,
        "sandbox": True,
        "project_id": PROJECT_ID,
        "external_id": None,
        "payment_date": dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC),  # same bytes each time
    }
    fields.update(overrides)
    return encode(build_order_paid(**fields))


def refusal(r: httpx.Response) -> str:
    assert r.status_code == 400, r.text
    return str(r.json()["error"]["code"])


def test_order_paid_is_checked_before_anything_is_granted(game: Game) -> None:
    order = bought(game, quantity=2)
    one = (SimItem("gems_500", 1, Decimal("4.99")),)
    other_sku = (SimItem("sword_01", 2, Decimal("9.98")),)
    assert refusal(post(game, paid_body(game, order, order_id=999_999))) == "INCORRECT_INVOICE"
    assert refusal(post(game, paid_body(game, order, user_id="victim"))) == "INVALID_USER"
    assert refusal(post(game, paid_body(game, order, items=one))) == "INCORRECT_INVOICE"
    assert refusal(post(game, paid_body(game, order, items=other_sku))) == "INCORRECT_INVOICE"
    cheap = (SimItem("gems_500", 2, Decimal("9.97")),)
    assert refusal(post(game, paid_body(game, order, items=cheap))) == "INCORRECT_AMOUNT"
    assert refusal(post(game, paid_body(game, order, currency="EUR"))) == "INCORRECT_AMOUNT"
    # A real (non-sandbox) notification is refused for a test order.
    assert refusal(post(game, paid_body(game, order, sandbox=False))) == "INVALID_PARAMETER"
    # The same refused bytes again: refused again, stored once.
    assert refusal(post(game, paid_body(game, order, user_id="victim"))) == "INVALID_USER"
    assert count(game, m.Entitlement) == 0
    # Stored refusals: the 7 distinct bodies, the real one too (kept for the audit in the
    # test environment, whose secret signed it).
    assert count(game, m.InboundEvent, status="refused") == 7
    assert player_order(game, order["order_id"])["status"] == "new"
    # "9.9800" is 9.98: the right notification still goes through after the refusals.
    assert post(game, paid_body(game, order)).status_code == 204
    assert player_order(game, order["order_id"])["status"] == "done"


def test_user_validation_and_environment_separation(game: Game) -> None:
    def validation(uid: str) -> bytes:
        return encode(build_user_validation(user_id=uid, project_id=PROJECT_ID))

    assert refusal(post(game, validation("player-1"))) == "INVALID_USER"
    bought(game)
    assert post(game, validation("player-1")).status_code == 204
    assert refusal(post(game, validation("stranger"))) == "INVALID_USER"
    assert count(game, m.InboundEvent) == 0  # user_validation has no effect: not stored

    # Live configured with its own secret: a sandbox notification signed with it is refused,
    # and a live notification for a test order is refused too.
    live_secret = "live-webhook-secret-0123"
    assert game.configure("live", webhook_secret=live_secret).status_code == 200
    order = bought(game)
    body = paid_body(game, order)
    r = post(game, body, authorization_header(body, live_secret))
    assert refusal(r) == "INVALID_PARAMETER"
    real = paid_body(game, order, sandbox=False)
    assert refusal(post(game, real, authorization_header(real, live_secret))) == (
        "INVALID_PARAMETER"
    )
    assert count(game, m.Entitlement) == 0
    assert post(game, body).status_code == 204


def test_notifications_for_the_other_environment_are_kept_for_audit(game: Game) -> None:
    """Refused (400 INVALID_PARAMETER, no effect) but stored as ``refused`` events of the
    environment whose secret signed them; the same bytes again are not stored twice."""
    live_secret = "live-webhook-secret-0123"
    assert game.configure("live", webhook_secret=live_secret).status_code == 200
    order = bought(game)
    sandbox_on_live = paid_body(game, order)
    for _ in range(2):
        r = post(game, sandbox_on_live, authorization_header(sandbox_on_live, live_secret))
        assert refusal(r) == "INVALID_PARAMETER"
    real_on_test = paid_body(game, order, sandbox=False, transaction_id=2_100_000_888)
    assert refusal(post(game, real_on_test)) == "INVALID_PARAMETER"
    with game.rt.db.read() as s:
        stored = {
            e.environment: e for e in s.query(m.InboundEvent).filter_by(status="refused").all()
        }
    assert set(stored) == {"live", "test"}
    assert stored["live"].body == sandbox_on_live
    assert stored["test"].body == real_on_test
    for event in stored.values():
        assert event.type == "order_paid"
        assert (event.error or "").startswith("INVALID_PARAMETER")
        assert event.processed_at is not None
    listed = game.http.get("/v1/events", headers=game.auth("live")).json()["data"]
    assert [(e["type"], e["status"]) for e in listed] == [("order_paid", "refused")]
    assert count(game, m.Entitlement) == 0
    # Neither claimed the order's key: the right notification still goes through.
    assert post(game, sandbox_on_live).status_code == 204
    assert player_order(game, order["order_id"])["status"] == "done"


def test_order_notifications_for_another_project_are_refused(game: Game) -> None:
    order = bought(game)
    other = paid_body(game, order, project_id=PROJECT_ID + 1)
    assert refusal(post(game, other)) == "INVALID_PARAMETER"
    assert count(game, m.Entitlement) == 0
    canceled = encode(
        build_order_canceled(
            order_id=order["xsolla_order_id"], user_id="player-1",
            items=game.sim.orders[order["xsolla_order_id"]].items, project_id=PROJECT_ID + 1,
        )
    )  # fmt: skip
    assert refusal(post(game, canceled)) == "INVALID_PARAMETER"
    assert count(game, m.InboundEvent, status="refused") == 2
    assert player_order(game, order["order_id"])["status"] == "new"
    assert post(game, paid_body(game, order)).status_code == 204


def test_unknown_types_are_acknowledged_and_logged(
    game: Game, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="caisse.xsolla"):
        assert post(game, b'{"notification_type":"redeem_key","x":1}').status_code == 204
    (line,) = [
        r for r in caplog.records if getattr(r, "action", "") == "xsolla.webhook.unhandled_type"
    ]
    assert line.type == "redeem_key"  # type: ignore[attr-defined]
    assert line.tenant_id == game.tenant_id  # type: ignore[attr-defined]


def test_the_callback_is_in_the_openapi_document(game: Game) -> None:
    paths = game.http.get("/openapi.json").json()["paths"]
    doc = paths["/callbacks/v1.0/xsolla/{tenant_id}"]["post"]
    assert {p["name"] for p in doc["parameters"]} == {"tenant_id", "Authorization"}
    assert {"204", "400", "500"} <= set(doc["responses"])
    assert "/callbacks/v1.0/stripe/{tenant_id}" in paths
    assert "/v1/xsolla/{tenant_id}/payment-token" in paths
