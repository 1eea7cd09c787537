"""Credentials, catalogue and the player's payment-token endpoint, over real HTTP: a live caisse,
the Xsolla simulator and a Firebase certificate server on loopback (cases T1–T10)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from tests.functional.xsolla.conftest import API_KEY, FIREBASE_PROJECT, PROJECT_ID, Game
from tests.support.firebase import KeyPair, claims, hs256_with_public_key, mint, unsigned

from caisse.storage import models as m


def test_credentials_are_validated_encrypted_and_masked(game: Game) -> None:
    view = game.http.get("/v1/providers/xsolla", headers=game.auth()).json()
    assert view["sandbox"] is True
    assert view["livemode"] is False
    assert view["project_id"] == str(PROJECT_ID)
    assert API_KEY not in str(view)
    assert view["api_key"].endswith(API_KEY[-4:])
    assert view["webhook_url"].endswith(f"/callbacks/v1.0/xsolla/{game.tenant_id}")
    assert "order_paid" in view["notification_types"]
    with game.rt.db.read() as s:
        row = s.query(m.ProviderAccount).filter_by(provider="xsolla").one()
        assert API_KEY not in str(row.secrets)
    assert game.http.get("/v1/providers/xsolla", headers=game.auth("live")).status_code == 404
    for bad in (
        {"project_id": "abc"},
        {"firebase_project_id": "Not A Project"},
        {"return_url_allowlist": ["javascript://x"]},
        {"return_url_allowlist": ["https://game.example/?q=1"]},
        {"api_key": ""},
    ):
        r = game.configure(**bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
    live = game.configure("live").json()
    assert live["sandbox"] is False
    assert live["livemode"] is True


def test_catalog_is_per_environment_and_public(game: Game) -> None:
    assert game.item("gems_500", 599).status_code == 200  # replaced
    assert game.item("bad sku!", 100).status_code in (400, 404)
    assert game.item("zero", 0).status_code == 400
    assert game.item("hat", 99, status="unavailable").status_code == 201
    items = game.http.get("/v1/catalog/items?limit=2", headers=game.auth()).json()
    assert items["has_more"] is True
    assert len(items["data"]) == 2
    rest = game.http.get(
        f"/v1/catalog/items?limit=2&starting_after={items['data'][-1]['id']}",
        headers=game.auth(),
    ).json()
    assert {i["sku"] for i in items["data"] + rest["data"]} == {"gems_500", "sword_01", "hat"}
    assert game.http.get("/v1/catalog/items", headers=game.auth("live")).json()["data"] == []

    public = game.http.get(f"/v1/xsolla/{game.tenant_id}/catalog?mode=test").json()
    assert [i["sku"] for i in public["data"]] == ["gems_500", "hat", "sword_01"]
    by_sku = {i["sku"]: i for i in public["data"]}
    assert by_sku["gems_500"]["price"] == {"amount": 599, "currency": "usd", "display": "5.99"}
    assert by_sku["hat"]["available"] is False
    assert "id" not in by_sku["hat"]
    assert game.http.get(f"/v1/xsolla/{game.tenant_id}/catalog").json()["data"] == []  # live
    assert game.http.get(f"/v1/xsolla/{game.tenant_id}/catalog?mode=prod").status_code == 400
    assert game.http.get("/v1/xsolla/ten_nope/catalog").status_code == 404


def test_public_catalog_pages_by_sku(game: Game) -> None:
    """The public view has no ids: its cursor is the last SKU of the page."""
    added = [f"item_{n:02d}" for n in range(12)]
    for n, sku in enumerate(added):
        assert game.item(sku, 100 + n).status_code == 201
    skus = sorted(["gems_500", "sword_01", *added])
    url = f"/v1/xsolla/{game.tenant_id}/catalog"
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"mode": "test", "limit": 5}
        if cursor is not None:
            params["starting_after"] = cursor
        r = game.http.get(url, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [i["sku"] for i in body["data"]]
        pages += 1
        if not body["has_more"]:
            break
        cursor = body["data"][-1]["sku"]
    assert seen == skus  # every SKU once, ascending
    assert pages == 3
    bad = game.http.get(url, params={"mode": "test", "starting_after": "not a sku!"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "sku"


def test_every_bad_token_is_401_and_xsolla_is_never_called(
    game: Game, fb_other_key: KeyPair
) -> None:
    now = int(time.time())
    key = game.key
    tokens = {
        "other key": mint(fb_other_key, FIREBASE_PROJECT, kid=key.kid),
        "alg none": unsigned(claims(FIREBASE_PROJECT)),
        "HS256 with the public key": hs256_with_public_key(key, FIREBASE_PROJECT),
        "wrong aud": mint(key, FIREBASE_PROJECT, aud="other-project"),
        "wrong iss": mint(key, FIREBASE_PROJECT, iss="https://session.firebase.google.com/x"),
        "expired": mint(key, FIREBASE_PROJECT, exp=now - 61, iat=now - 3700),
        "future iat": mint(key, FIREBASE_PROJECT, iat=now + 120),
        "future auth_time": mint(key, FIREBASE_PROJECT, auth_time=now + 120),
        "missing kid": mint(key, FIREBASE_PROJECT, kid=None),
        "unknown kid": mint(key, FIREBASE_PROJECT, kid="kid-unknown"),
        "empty sub": mint(key, FIREBASE_PROJECT, sub=""),
        "garbage": "not.a.token",
    }
    url = f"/v1/xsolla/{game.tenant_id}/payment-token"
    body = {"sku": "gems_500", "mode": "test"}
    for reason, token in tokens.items():
        r = game.http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (reason, r.text)
        assert r.json()["error"]["code"] == "authentication_failed"
    assert game.http.post(url, json=body).status_code == 401
    assert (
        game.http.post(url, json=body, headers={"Authorization": "Basic eDp5"}).status_code == 401
    )
    order_url = f"/v1/xsolla/{game.tenant_id}/orders/ord_x?mode=test"
    assert game.http.get(order_url, headers={"Authorization": "Bearer x"}).status_code == 401
    assert game.sim.requests == []
    with game.rt.db.read() as s:
        assert s.query(m.Order).count() == 0


def test_payment_token_for_the_token_subject_only(game: Game) -> None:
    r = game.buy(
        "player-1", quantity=2, uid="victim", email="victim@example.com",
        return_url="https://game.example/after-payment",
    )  # fmt: skip
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) >= {"token", "order_id", "xsolla_order_id", "paystation_url"}
    assert body["paystation_url"].startswith("https://sandbox-secure.xsolla.com/paystation4/")
    assert r.headers["cache-control"] == "no-store"

    (call,) = game.sim.requests
    expected = base64.b64encode(f"{PROJECT_ID}:{API_KEY}".encode()).decode()
    assert call.path == f"/api/v3/project/{PROJECT_ID}/admin/payment/token"
    assert call.headers["authorization"] == f"Basic {expected}"
    assert call.headers["x-user-ip"] == "127.0.0.1"
    sent = call.json()
    assert sent["user"]["id"] == {"value": "player-1"}
    assert sent["user"]["email"] == {"value": "player-1@example.com"}
    assert sent["purchase"] == {"items": [{"sku": "gems_500", "quantity": 2}]}
    assert sent["sandbox"] is True
    assert sent["settings"]["external_id"] == body["order_id"]
    assert sent["settings"]["currency"] == "USD"
    assert sent["settings"]["return_url"] == "https://game.example/after-payment"
    assert game.sim.orders[body["xsolla_order_id"]].user_id == "player-1"

    mine = game.http.get(
        f"/v1/xsolla/{game.tenant_id}/orders/{body['order_id']}?mode=test",
        headers=game.player("player-1"),
    )
    assert mine.status_code == 200
    assert mine.json()["status"] == "new"
    assert mine.json()["amount"] == 998
    for other in (game.player("victim"),):
        r = game.http.get(
            f"/v1/xsolla/{game.tenant_id}/orders/{body['order_id']}?mode=test", headers=other
        )
        assert r.status_code == 404
    tenant_view = game.http.get(f"/v1/orders/{body['order_id']}", headers=game.auth()).json()
    assert tenant_view["payment"]["provider"] == "xsolla"
    assert tenant_view["customer"]["uid"] == "player-1"
    assert tenant_view["status"] == "open"
    assert tenant_view["amount_total"] == 998


def forwarded_buy(game: Game, **player: Any) -> str:
    """Buy with an X-Forwarded-For header; the X-User-Ip that Xsolla received."""
    r = game.http.post(
        f"/v1/xsolla/{game.tenant_id}/payment-token",
        json={"sku": "gems_500", "mode": "test"},
        headers={**game.player("p2", **player), "X-Forwarded-For": "198.51.100.7"},
    )
    assert r.status_code == 201, r.text
    return str(game.sim.requests[-1].headers["x-user-ip"])


def test_unverified_email_is_not_sent_and_forwarded_for_is_ignored(game: Game) -> None:
    # Served as ``caisse serve`` without CAISSE_TRUSTED_PROXIES: uvicorn's proxy headers off,
    # so a player cannot pick the country Xsolla sees by sending X-Forwarded-For.
    assert forwarded_buy(game, email_verified=False) == "127.0.0.1"
    (call,) = game.sim.requests
    assert "email" not in call.json()["user"]


def test_forwarded_for_is_honoured_from_a_trusted_proxy(make_game: Callable[..., Game]) -> None:
    game = make_game(trusted_proxies=("127.0.0.1",))
    assert forwarded_buy(game) == "198.51.100.7"


def test_bad_requests_are_refused_before_xsolla(game: Game) -> None:
    assert game.item("sword_01", 199, status="unavailable").status_code == 200
    cases = [
        ({"sku": "nope"}, 404),
        ({"sku": "sword_01"}, 400),
        ({"quantity": 0}, 400),
        ({"quantity": 101}, 400),
        ({"return_url": "https://evil.example/after"}, 400),
        ({"return_url": "https://game.example.evil.test/x"}, 400),
        ({"mode": "staging"}, 400),
    ]
    for body, status in cases:
        r = game.buy(**body)
        assert r.status_code == status, (body, r.text)
    assert game.buy(mode="live").status_code == 404  # no live Xsolla project configured
    assert game.sim.requests == []
    assert game.buy(return_url="mygame://payment/done").status_code == 201


def test_idempotency_key_is_per_player(game: Game) -> None:
    url = f"/v1/xsolla/{game.tenant_id}/payment-token"
    body = {"sku": "gems_500", "mode": "test"}
    headers = {**game.player("p1"), "Idempotency-Key": "k-1"}
    first = game.http.post(url, json=body, headers=headers)
    again = game.http.post(url, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert len(game.sim.requests) == 1
    conflict = game.http.post(url, json={**body, "quantity": 3}, headers=headers)
    assert conflict.status_code == 409
    other = game.http.post(url, json=body, headers={**game.player("p2"), "Idempotency-Key": "k-1"})
    assert other.status_code == 201
    assert other.json()["order_id"] != first.json()["order_id"]
    assert len(game.sim.requests) == 2


def test_xsolla_failures_map_to_clear_errors_and_leave_no_order(game: Game) -> None:
    game.sim.fail_next(503)
    r = game.buy()
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "provider_unavailable"

    game.sim.projects[PROJECT_ID].catalog.pop("sword_01")
    assert game.item("sword_01", 199).status_code == 200
    r = game.buy(sku="sword_01")
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_refused"
    assert "1417" in r.text

    assert game.configure(api_key="wrong-key-0123456789").status_code == 200
    r = game.buy()
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_auth"
    assert "wrong-key" not in r.text
    assert API_KEY not in r.text

    with game.rt.db.read() as s:
        assert s.query(m.Order).count() == 0
        assert s.query(m.XsollaOrder).count() == 0
    # The key was released: the same Idempotency-Key works once Xsolla does.
    assert game.configure().status_code == 200
    assert game.buy().status_code == 201
