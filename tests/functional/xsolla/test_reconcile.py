"""Xsolla reconciliation end to end: players pay through the simulator while the webhooks are
lost, ``caisse reconcile`` reads the simulator's transaction reports over HTTP and repairs the
orders through the webhook's own path, once; Xsolla's errors stay on their tenant's row."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
from tests.functional.xsolla.conftest import (
    API_KEY,
    FIREBASE_PROJECT,
    PROJECT_ID,
    WEBHOOK_SECRET,
    Game,
)
from typer.testing import CliRunner

from caisse.cli import app as cli_app
from caisse.providers.xsolla.ratelimit import XsollaRateLimiter
from caisse.providers.xsolla.simulator import SimProject, WebhookSender, encode
from caisse.reconcile import ReconcileReport, reconcile
from caisse.storage import models as m

MERCHANT_ID = 887981  # SimProject's default
NO_GRACE = dt.timedelta(0)


def run(game: Game, **kw: Any) -> ReconcileReport:
    kw.setdefault("tenant_id", game.tenant_id)
    return reconcile(game.rt, grace=NO_GRACE, events=False, **kw)


def bought(game: Game, uid: str = "player-1") -> dict[str, Any]:
    r = game.buy(uid)
    assert r.status_code == 201, r.text
    return dict(r.json())


def status(game: Game, order_id: str) -> dict[str, Any]:
    r = game.http.get(f"/v1/orders/{order_id}", headers=game.auth())
    assert r.status_code == 200, r.text
    return dict(r.json())


def messages(game: Game, order_id: str) -> list[str]:
    with game.rt.db.read() as s:
        rows = s.query(m.Message).filter_by(order_id=order_id).order_by(m.Message.id)
        return [x.type for x in rows]


def entitlements(game: Game, order_id: str) -> list[str]:
    with game.rt.db.read() as s:
        return [e.status for e in s.query(m.Entitlement).filter_by(order_id=order_id)]


def events(game: Game, order_id: str) -> list[tuple[str, str, str]]:
    with game.rt.db.read() as s:
        rows = s.query(m.InboundEvent).filter_by(order_id=order_id).order_by(m.InboundEvent.id)
        return sorted((e.type, e.status, e.headers.get("user-agent", "")) for e in rows)


def webhook(game: Game, body: bytes) -> httpx.Response:
    from caisse.providers.xsolla.signature import authorization_header

    return game.http.post(
        f"/callbacks/v1.0/xsolla/{game.tenant_id}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": authorization_header(body, WEBHOOK_SECRET),
        },
    )


def row(report: ReconcileReport, tenant_id: str) -> Any:
    return report.rows[(tenant_id, "test", "xsolla")]


@pytest.fixture
def merchant_game(game: Game) -> Game:
    bad = game.configure(merchant_id="12ab")
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "merchant_id"
    r = game.configure(merchant_id=MERCHANT_ID)
    assert r.status_code == 200, r.text
    assert r.json()["merchant_id"] == str(MERCHANT_ID)
    return game


def test_a_payment_whose_webhook_was_lost_is_repaired_once(merchant_game: Game) -> None:
    game = merchant_game
    order = bought(game)
    game.sim.pay(order["xsolla_order_id"])  # the player paid; Xsolla's webhook never came
    assert status(game, order["order_id"])["status"] == "open"

    young = reconcile(game.rt, tenant_id=game.tenant_id, events=False)  # default grace: 10 min
    assert row(young, game.tenant_id).checked == 0

    report = run(game)
    assert report.errors == []
    assert (row(report, game.tenant_id).checked, row(report, game.tenant_id).repaired) == (1, 1)
    view = status(game, order["order_id"])
    assert view["status"] == "paid"
    assert view["amount_paid"] == 499
    assert view["payments"][0]["provider"] == "xsolla"
    assert messages(game, order["order_id"]) == ["order.paid"]
    assert entitlements(game, order["order_id"]) == ["granted"]
    player = game.http.get(
        f"/v1/xsolla/{game.tenant_id}/orders/{order['order_id']}?mode=test",
        headers=game.player(),
    ).json()
    assert player["status"] == "done"
    assert events(game, order["order_id"]) == [
        ("order_paid", "processed", "caisse-reconcile (Xsolla transaction search)")
    ]

    # Twice: nothing is applied twice (the order is no longer waiting).
    again = run(game)
    assert (row(again, game.tenant_id).checked, row(again, game.tenant_id).repaired) == (0, 0)
    # The webhook arrives after all (Xsolla retries for ~48 h): acknowledged, no second effect.
    late = webhook(game, encode(game.sim.order_payload(order["xsolla_order_id"])))
    assert late.status_code == 204
    assert messages(game, order["order_id"]) == ["order.paid"]
    assert entitlements(game, order["order_id"]) == ["granted"]
    assert len(events(game, order["order_id"])) == 1


def test_a_webhook_before_reconcile_leaves_nothing_to_do(merchant_game: Game) -> None:
    game = merchant_game
    order = bought(game)
    game.sim.pay(order["xsolla_order_id"])
    assert (
        webhook(game, encode(game.sim.order_payload(order["xsolla_order_id"]))).status_code == 204
    )
    report = run(game)
    assert row(report, game.tenant_id).repaired == 0
    assert messages(game, order["order_id"]) == ["order.paid"]


@pytest.mark.parametrize("reversal", ["refunded", "canceled"])
def test_a_refund_whose_webhook_was_lost_is_applied(merchant_game: Game, reversal: str) -> None:
    game = merchant_game
    order = bought(game)
    sender = WebhookSender(f"{game.url}/callbacks/v1.0/xsolla/{game.tenant_id}", WEBHOOK_SECRET)

    async def purchase() -> None:
        try:
            await sender.purchase(game.sim, order["xsolla_order_id"])
        finally:
            await sender.aclose()

    anyio.run(purchase)
    assert status(game, order["order_id"])["status"] == "paid"
    game.sim.cancel(order["xsolla_order_id"], transaction_status=reversal)  # no webhook

    report = run(game)
    assert report.errors == []
    assert row(report, game.tenant_id).repaired == 1
    view = status(game, order["order_id"])
    assert view["status"] == "refunded"
    assert view["amount_refunded"] == 499
    assert entitlements(game, order["order_id"]) == ["revoked"]
    assert messages(game, order["order_id"]) == ["order.paid", "order.refunded"]

    assert row(run(game), game.tenant_id).repaired == 0
    payload = game.sim.order_payload(order["xsolla_order_id"], kind="order_canceled")
    assert webhook(game, encode(payload)).status_code == 204
    assert messages(game, order["order_id"]) == ["order.paid", "order.refunded"]


def test_paid_then_refunded_with_both_webhooks_lost(merchant_game: Game) -> None:
    game = merchant_game
    order = bought(game)
    game.sim.pay(order["xsolla_order_id"])
    game.sim.cancel(order["xsolla_order_id"])
    report = run(game)
    assert row(report, game.tenant_id).repaired == 1
    assert status(game, order["order_id"])["status"] == "refunded"
    assert messages(game, order["order_id"]) == ["order.paid", "order.refunded"]
    assert entitlements(game, order["order_id"]) == ["revoked"]
    assert [e[0] for e in events(game, order["order_id"])] == ["order_canceled", "order_paid"]


def test_a_transaction_that_does_not_match_is_reported_not_applied(merchant_game: Game) -> None:
    game = merchant_game
    order = bought(game)
    xo = game.sim.orders[order["xsolla_order_id"]]
    xo.items = (replace(xo.items[0], amount=Decimal("0.99")),)  # Xsolla charged another amount
    game.sim.pay(order["xsolla_order_id"])
    report = run(game)
    (error,) = report.errors
    assert "differs" in error
    assert status(game, order["order_id"])["status"] == "open"
    assert entitlements(game, order["order_id"]) == []


def test_every_xsolla_call_takes_a_token_from_the_merchant_bucket(merchant_game: Game) -> None:
    game = merchant_game
    for _ in range(3):
        bought(game)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = XsollaRateLimiter(share=0.5, monotonic=lambda: now[0], sleep=sleep)
    run(game, xsolla_limiter=limiter)
    # 1 call/s: three fast searches and two report searches (refunded, canceled) are five calls
    # with one in the bucket at the start, so the pass waited four seconds of (fake) time.
    assert limiter.rate("merchant") == 1.0
    assert limiter.waited == 4.0


OTHER_KEY = "other-api-key-0123456789"


def other_tenant(game: Game) -> Game:
    """A second game studio on its own Xsolla project and merchant."""
    project = SimProject(
        project_id=PROJECT_ID + 1, api_key=OTHER_KEY,
        webhook_secret="other-webhook-secret-1", merchant_id=MERCHANT_ID + 1,
    )  # fmt: skip
    project.add_item("gems_500", Decimal("4.99"))
    game.sim.add_project(project)
    admin = {"Authorization": f"Bearer {game.rt.settings.admin_token.reveal()}"}
    body = game.http.post("/v1/tenants", json={"name": "Other"}, headers=admin).json()
    other = Game(game.http, game.url, game.rt, body["id"], body["api_keys"], game.key, game.sim)
    r = other.configure(
        project_id=project.project_id, api_key=OTHER_KEY, merchant_id=project.merchant_id,
        webhook_secret=project.webhook_secret, firebase_project_id=FIREBASE_PROJECT,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert other.item("gems_500", 499).status_code == 201
    return other


def lost_payment(game: Game) -> str:
    order = bought(game)
    game.sim.pay(order["xsolla_order_id"])
    return str(order["order_id"])


@pytest.mark.parametrize("failure", [429, 500, 503])
def test_api_errors_stay_on_their_tenant(merchant_game: Game, failure: int) -> None:
    game = merchant_game
    other = other_tenant(game)
    orders = {game.tenant_id: lost_payment(game), other.tenant_id: lost_payment(other)}
    game.sim.fail_next(failure)  # the first tenant's first call fails
    report = run(game, tenant_id=None)
    first, second = sorted(orders)
    assert row(report, first).repaired == 0
    (error,) = row(report, first).errors
    assert ("429" in error) if failure == 429 else ("unavailable" in error)
    assert row(report, second).errors == []
    assert row(report, second).repaired == 1
    assert status(game, orders[first])["status"] == "open"
    # The next run repairs what the failure left.
    assert row(run(game, tenant_id=None), first).repaired == 1
    for order_id in orders.values():
        assert messages(game, order_id) == ["order.paid"]


def test_refused_credentials_and_a_missing_merchant_id(merchant_game: Game) -> None:
    game = merchant_game
    other = other_tenant(game)
    lost_payment(other)
    wrong = other.configure(
        project_id=PROJECT_ID + 1, api_key="wrong-api-key-0123456789",
        merchant_id=MERCHANT_ID + 1, webhook_secret="other-webhook-secret-1",
    )  # fmt: skip
    assert wrong.status_code == 200
    repaired = lost_payment(game)
    third = other_tenant(game)
    assert third.configure(project_id=PROJECT_ID + 1, api_key=API_KEY).status_code == 200
    report = run(game, tenant_id=None)
    (error,) = row(report, other.tenant_id).errors
    assert "401" in error
    assert "wrong-api-key" not in error
    assert row(report, game.tenant_id).repaired == 1
    assert row(report, third.tenant_id).skipped == "no Xsolla merchant_id configured"
    assert status(game, repaired)["status"] == "paid"


def test_a_timeout_is_reported_and_the_run_ends(merchant_game: Game) -> None:
    game = merchant_game
    order_id = lost_payment(game)
    game.sim.delay = 1.0
    report = run(game, xsolla_timeout=0.2)
    (error,) = report.errors
    assert "did not answer in time" in error
    game.sim.delay = 0.0
    assert run(game).repaired == 1
    assert status(game, order_id)["status"] == "paid"


def test_caisse_reconcile_command_prints_a_table_per_tenant(merchant_game: Game) -> None:
    game = merchant_game
    order_id = lost_payment(game)
    settings = game.rt.settings
    env = {
        "CAISSE_DATABASE_URL": settings.database_url,
        "CAISSE_DATA_DIR": str(settings.data_dir),
        "CAISSE_MASTER_KEY": settings.master_keys[0].reveal(),
        "CAISSE_ADMIN_TOKEN": settings.admin_token.reveal(),
        "CAISSE_XSOLLA_API_BASE": settings.xsolla_api_base,
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(
        cli_app, ["reconcile", "--tenant", game.tenant_id, "--grace-minutes", "0"], env=env
    )
    assert result.exit_code == 0, result.output
    assert game.tenant_id in result.output
    assert "xsolla" in result.output
    assert "repaired 1" in result.output
    assert status(game, order_id)["status"] == "paid"
    bad = CliRunner().invoke(cli_app, ["reconcile", "--provider", "paypal"], env=env)
    assert bad.exit_code != 0
