"""The player endpoints when something is wrong: Google's certificates, Xsolla's token API
(timeout, refused connection, 429), anonymous callers, emulator mode; over real HTTP with the
certificate server and the Xsolla simulator on loopback."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import anyio
import pytest
from tests.functional.xsolla.conftest import API_KEY, WEBHOOK_SECRET, Game, Peers
from tests.support.api import drain
from tests.support.firebase import claims, unsigned

from caisse.providers.xsolla.simulator import WebhookSender
from caisse.storage import models as m
from caisse.web.app import create_app

DEMO_PROJECT = "demo-caisse-game"


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago): connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_order_left(game: Game) -> None:
    with game.rt.db.read() as s:
        assert s.query(m.Order).count() == 0
        assert s.query(m.XsollaOrder).count() == 0


def test_missing_google_certificates_are_503_and_xsolla_is_not_called(
    game: Game, peers: Peers
) -> None:
    peers.certs.status = 500
    r = game.buy()
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "auth_keys_unavailable"
    assert r.headers["retry-after"].isdigit()
    assert "www-authenticate" not in r.headers  # not an authentication failure
    assert peers.certs.hits == 1
    assert game.sim.requests == []
    no_order_left(game)
    peers.certs.status = 200  # Google is back (after the 5 s failure back-off)


def test_anonymous_callers_get_401_before_anything_about_the_tenant(game: Game) -> None:
    for tenant in ("ten_nope", game.tenant_id):
        for mode in ("live", "test"):
            url = f"/v1/xsolla/{tenant}/payment-token"
            r = game.http.post(url, json={"sku": "gems_500", "mode": mode})
            assert r.status_code == 401, (tenant, mode, r.text)
            bad = {"Authorization": "Bearer not.a.token"}
            assert game.http.post(
                url, json={"sku": "x", "mode": mode}, headers=bad
            ).status_code == (401)
            order = f"/v1/xsolla/{tenant}/orders/ord_x?mode={mode}"
            assert game.http.get(order).status_code == 401
    # A signed-in player learns what is missing.
    assert game.buy(mode="live").status_code == 404  # no live Xsolla project
    r = game.http.post(
        "/v1/xsolla/ten_nope/payment-token", json={"sku": "gems_500"}, headers=game.player()
    )
    assert r.status_code == 404
    assert game.sim.requests == []


def test_xsolla_timeout_is_504_and_leaves_no_order(make_game: Callable[..., Game]) -> None:
    game = make_game(xsolla_timeout=0.5)
    game.sim.delay = 3.0  # Xsolla answers, but far too late
    r = game.buy()
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] == "provider_timeout"
    assert len(game.sim.requests) == 1
    no_order_left(game)
    game.sim.delay = 0.0
    assert game.buy().status_code == 201


def test_connection_refused_is_502_provider_unavailable(
    make_game: Callable[..., Game], caplog: pytest.LogCaptureFixture
) -> None:
    game = make_game(xsolla_api_base=f"http://127.0.0.1:{closed_port()}")
    with caplog.at_level(logging.DEBUG):
        r = game.buy()
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "provider_unavailable"
    assert API_KEY not in r.text
    no_order_left(game)
    assert_no_secret_logged(caplog)


def test_xsolla_429_is_503_with_retry_after(game: Game) -> None:
    game.sim.retry_after = 7
    game.sim.fail_next(429)
    r = game.buy()
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "provider_rate_limited"
    assert r.headers["retry-after"] == "7"
    no_order_left(game)
    game.sim.retry_after = None
    game.sim.fail_next(429)
    assert game.buy().headers["retry-after"] == "5"  # Xsolla said nothing: our default
    assert game.buy().status_code == 201  # the released key works once Xsolla does


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "the failures were expected to be logged"
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert API_KEY not in text, record
        assert WEBHOOK_SECRET not in text, record


def test_the_api_key_appears_in_no_log_line(
    game: Game, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every failure of the token call, logged at DEBUG: the key is in none of the lines."""
    monkeypatch.setattr(logging.getLogger("caisse"), "propagate", True)  # as configure() may not
    with caplog.at_level(logging.DEBUG):
        for status in (401, 422, 429, 500, 503):
            game.sim.fail_next(status)
            assert game.buy().status_code >= 400
        assert game.configure(api_key="wrong-key-0123456789").status_code == 200
        assert game.buy().json()["error"]["code"] == "upstream_auth"
    assert_no_secret_logged(caplog)
    for record in caplog.records:
        assert "wrong-key-0123456789" not in f"{record.getMessage()} {record.__dict__}"


def test_emulator_mode_is_for_test_players_of_demo_projects_only(
    make_game: Callable[..., Game], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="caisse.xsolla"):
        game = make_game(firebase_emulator=True)
    assert any(getattr(r, "action", "") == "xsolla.firebase.emulator_on" for r in caplog.records), (
        "a warning at start-up"
    )
    # A live account may not name a demo-* project; a test account may.
    r = game.configure("live", firebase_project_id=DEMO_PROJECT)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "firebase_project_id"
    assert game.configure("test", firebase_project_id=DEMO_PROJECT).status_code == 200
    token = unsigned(
        claims(DEMO_PROJECT, iss=f"https://securetoken.google.com/{DEMO_PROJECT}", aud=DEMO_PROJECT)
    )
    url = f"/v1/xsolla/{game.tenant_id}/payment-token"
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        game.http.post(url, json={"sku": "gems_500", "mode": "test"}, headers=headers).status_code
        == 201
    )
    # The same unsigned token is refused for live, whatever is configured there.
    assert game.configure("live").status_code == 200
    r = game.http.post(url, json={"sku": "gems_500", "mode": "live"}, headers=headers)
    assert r.status_code == 401


def test_no_emulator_warning_without_emulator_mode(
    settings: object, caplog: pytest.LogCaptureFixture
) -> None:
    from caisse.config import Settings

    assert isinstance(settings, Settings)
    with caplog.at_level(logging.WARNING, logger="caisse.xsolla"):
        create_app(settings)
    assert not [r for r in caplog.records if getattr(r, "action", "").endswith("emulator_on")]


def test_a_paid_xsolla_order_gets_its_invoice_from_the_worker(game: Game) -> None:
    r = game.buy(quantity=2)
    assert r.status_code == 201, r.text
    order = r.json()
    sender = WebhookSender(f"{game.url}/callbacks/v1.0/xsolla/{game.tenant_id}", WEBHOOK_SECRET)

    async def purchase() -> None:
        try:
            results = await sender.purchase(game.sim, order["xsolla_order_id"])
            assert [x.status_code for x in results] == [204, 204]
        finally:
            await sender.aclose()

    anyio.run(purchase)
    drain(game.rt)  # the worker's jobs: the invoice, the partner messages
    view = game.http.get(f"/v1/orders/{order['order_id']}", headers=game.auth()).json()
    assert view["status"] == "paid"
    summary = view["invoice"]
    assert summary is not None
    assert summary["kind"] == "invoice"
    invoice = game.http.get(f"/v1/invoices/{summary['id']}", headers=game.auth()).json()
    assert invoice["status"] == "issued"
    assert invoice["livemode"] is False
    assert invoice["amount_gross"] == 998
    assert invoice["order_id"] == order["order_id"]
    pdf = game.http.get(f"/v1/invoices/{summary['id']}/pdf", headers=game.auth())
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
