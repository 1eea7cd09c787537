"""The Xsolla leg of ``caisse demo``: a Firebase player buys a catalogue SKU through Pay Station.

Every peer is real HTTP on loopback, as in the tests: the project's Xsolla simulator
(:func:`~caisse.providers.xsolla.simulator.create_simulator_app`) plays Xsolla's Store API and
its webhook server, and a small app plays Google's certificate endpoint for a local RSA key, so
the player's Firebase ID token is a real RS256 token that caisse verifies as it would Google's
(no emulator mode, no unsigned token). The merchant configures its test (sandbox) Xsolla project
and one SKU; the player gets a Pay Station token from caisse's real endpoint; the simulator
"pays" and sends the signed ``user_validation`` and ``order_paid`` webhooks; the order turns
``paid`` and the player's status ``done``, with the item granted.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from caisse.auth.selfsigned import self_signed_certificate
from caisse.providers.xsolla.simulator import (
    SimProject,
    SimulatorState,
    WebhookSender,
    create_simulator_app,
)

PROJECT_ID = 44056
FIREBASE_PROJECT = "caisse-demo-game"
PLAYER_UID = "firebase-uid-ada"
SKU = "gems_500"
KID = "demo-key-1"


@dataclass
class XsollaWorld:
    """The demo's Xsolla project (simulated) and the key that signs the player's ID tokens."""

    state: SimulatorState
    project: SimProject
    private_key: rsa.RSAPrivateKey
    sim_url: str = ""
    certs_url: str = ""

    def id_token(self, uid: str = PLAYER_UID) -> str:
        """A Firebase ID token as the Firebase client SDK would hand it to the game."""
        now = int(time.time())
        claims = {
            "iss": f"https://securetoken.google.com/{FIREBASE_PROJECT}",
            "aud": FIREBASE_PROJECT,
            "auth_time": now - 60,
            "user_id": uid,
            "sub": uid,
            "iat": now,
            "exp": now + 3600,
            "email": "ada@example.com",
            "email_verified": True,
            "firebase": {"sign_in_provider": "password"},
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": KID})


def _certs_app(pem: str) -> Starlette:
    """Google's x509 endpoint for the demo key: ``{kid: PEM}``, cached an hour."""
    body = json.dumps({KID: pem})

    async def certs(_: Request) -> Response:
        return Response(
            body, media_type="application/json", headers={"Cache-Control": "max-age=3600"}
        )

    return Starlette(routes=[Route("/certs", certs)])


@contextlib.contextmanager
def xsolla_peers(serve: Any) -> Iterator[XsollaWorld]:
    """Start the simulator and the certificate server with ``serve(app)`` (a context manager
    yielding the base URL, see ``caisse.demo.serve_app``)."""
    project = SimProject(
        project_id=PROJECT_ID,
        api_key="demo-xsolla-api-key-" + secrets.token_hex(8),
        webhook_secret="demo-xsolla-webhook-" + secrets.token_hex(8),
    )
    project.add_item(SKU, Decimal("4.99"))
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    world = XsollaWorld(SimulatorState([project]), project, private)
    with contextlib.ExitStack() as stack:
        world.sim_url = stack.enter_context(serve(create_simulator_app(world.state)))
        pem = self_signed_certificate(private, common_name="caisse demo securetoken")
        world.certs_url = stack.enter_context(serve(_certs_app(pem))) + "/certs"
        yield world


def walkthrough(
    console: Console, base: str, tenant_id: str, test_key: str, world: XsollaWorld
) -> bool:
    """The merchant's set-up, the player's purchase, Xsolla's webhooks; True when granted."""
    step = _stepper(console)
    http = httpx.Client(base_url=base, timeout=20)
    auth = {"Authorization": f"Bearer {test_key}"}

    step("The merchant pastes its Xsolla project (test environment: Xsolla's sandbox)")
    project = world.project
    settings = (
        http.put(
            "/v1/providers/xsolla",
            headers=auth,
            json={
                "project_id": project.project_id,
                "api_key": project.api_key,
                "webhook_secret": project.webhook_secret,
                "firebase_project_id": FIREBASE_PROJECT,
                "return_url_allowlist": ["https://game.example/after-payment"],
            },
        )
        .raise_for_status()
        .json()
    )
    console.print(
        f"  project [bold]{settings['project_id']}[/], API key shown as "
        f"[bold]{settings['api_key']}[/]; webhook URL [cyan]{settings['webhook_url']}[/]"
    )
    http.put(
        f"/v1/catalog/items/{SKU}",
        headers=auth,
        json={"name": "500 gems", "price": {"amount": 499, "currency": "usd"}},
    ).raise_for_status()
    console.print(f"  catalogue: [bold]{SKU}[/] 4.99 USD (the same price as in Xsolla)")

    step("The player signs in with Firebase and asks caisse for a Pay Station token")
    player = {"Authorization": f"Bearer {world.id_token()}"}
    pay = (
        http.post(
            f"/v1/xsolla/{tenant_id}/payment-token",
            headers={**player, "Idempotency-Key": "demo-buy-1"},
            json={"sku": SKU, "mode": "test", "return_url": "https://game.example/after-payment"},
        )
        .raise_for_status()
        .json()
    )
    console.print(
        f"  RS256 ID token verified for uid [bold]{PLAYER_UID}[/]; order [bold]"
        f"{pay['order_id']}[/], Xsolla order {pay['xsolla_order_id']}\n"
        f"  Pay Station: [cyan]{pay['paystation_url'][:72]}…[/]"
    )
    order_url = f"/v1/xsolla/{tenant_id}/orders/{pay['order_id']}?mode=test"
    before = http.get(order_url, headers=player).raise_for_status().json()
    console.print(f"  player's order status: [yellow]{before['status']}[/]")

    step("The player pays in Pay Station; Xsolla sends its signed webhooks")
    sender = WebhookSender(settings["webhook_url"], project.webhook_secret)

    async def purchase() -> list[Any]:
        try:
            return await sender.purchase(world.state, pay["xsolla_order_id"])
        finally:
            await sender.aclose()

    for name, result in zip(("user_validation", "order_paid"), anyio.run(purchase), strict=False):
        colour = "green" if result.delivered else "red"
        console.print(f"  [{colour}]{result.status_code}[/] {name}")
    console.print(
        f"  Xsolla's side of the order: [bold]{world.state.orders[pay['xsolla_order_id']].status}"
    )

    after = http.get(order_url, headers=player).raise_for_status().json()
    order = http.get(f"/v1/orders/{pay['order_id']}", headers=auth).raise_for_status().json()
    _show(console, order, after)
    return bool(after["status"] == "done" and order["status"] == "paid")


def _show(console: Console, order: dict[str, Any], player_view: dict[str, Any]) -> None:
    colour = "green" if player_view["status"] == "done" else "red"
    console.print(
        Panel.fit(
            f"order {order['id']}  ·  player {order['customer'].get('uid')}\n"
            f"status [bold]{order['status']}[/] (player sees [bold {colour}]"
            f"{player_view['status']}[/])   paid {order['amount_paid'] / 100:.2f} / "
            f"{order['amount_total'] / 100:.2f} {order['currency'].upper()}",
            title="Xsolla order",
        )
    )
    table = Table("sku", "quantity", "status", title="Entitlements granted to the player")
    for item in player_view["entitlements"]:
        table.add_row(item["sku"], str(item["quantity"]), item["status"])
    console.print(table)


def _stepper(console: Console) -> Any:
    def step(text: str) -> None:
        console.print(f"[bold magenta]▶[/] {text}")

    return step
