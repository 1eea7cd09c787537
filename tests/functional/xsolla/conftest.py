"""A live caisse (uvicorn on loopback), the Xsolla simulator and a Firebase certificate server,
each a real HTTP peer on 127.0.0.1; every test on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import make_settings
from tests.support.firebase import CertServer, KeyPair, make_key, mint
from tests.support.loopback import serve
from tests.support.servers import live_caisse

from caisse.config import Settings
from caisse.providers.xsolla.simulator import SimProject, SimulatorState, create_simulator_app
from caisse.runtime import Runtime

PROJECT_ID = 44056
API_KEY = "sim-api-key-0123456789abcdef"
WEBHOOK_SECRET = "sim-webhook-secret-0123"
FIREBASE_PROJECT = "caisse-game"
RETURN_URL = "https://game.example/after-payment"


@dataclass
class Served:
    url: str = ""
    state: SimulatorState = field(default_factory=SimulatorState)


@pytest.fixture(scope="session")
def fb_key() -> KeyPair:
    return make_key("kid-1")


@pytest.fixture(scope="session")
def fb_other_key() -> KeyPair:
    return make_key("kid-2")


@dataclass
class Peers:
    certs_url: str
    certs: CertServer
    sim: Served


@pytest.fixture(scope="module")
def peers(fb_key: KeyPair) -> Iterator[Peers]:
    """The certificate server and the simulator, once per module (the state swaps per test)."""
    certs = CertServer(certs={fb_key.kid: fb_key.cert_pem})
    sim = Served()

    async def sim_app(scope, receive, send):  # type: ignore[no-untyped-def]
        await create_simulator_app(sim.state)(scope, receive, send)

    with contextlib.ExitStack() as stack:
        certs_url = stack.enter_context(serve(certs.app())) + "/certs"
        sim.url = stack.enter_context(serve(sim_app))
        yield Peers(certs_url, certs, sim)


@pytest.fixture
def sim(peers: Peers) -> SimulatorState:
    project = SimProject(project_id=PROJECT_ID, api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)
    project.add_item("gems_500", Decimal("4.99"))
    project.add_item("sword_01", Decimal("1.99"))
    peers.sim.state = SimulatorState([project])
    peers.certs.status = 200
    peers.certs.hits = 0
    return peers.sim.state


@pytest.fixture
def settings(tmp_path: Path, db_url: str, peers: Peers) -> Settings:
    return make_settings(
        tmp_path, db_url, firebase_certs_url=peers.certs_url, xsolla_api_base=peers.sim.url
    )


@dataclass
class Game:
    """A merchant with Xsolla configured, as its game client and its back office see it."""

    http: httpx.Client
    url: str
    rt: Runtime
    tenant_id: str
    keys: dict[str, str]
    key: KeyPair
    sim: SimulatorState

    def auth(self, env: str = "test") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[env]}"}

    def player(self, uid: str = "player-1", **overrides: Any) -> dict[str, str]:
        token = mint(self.key, FIREBASE_PROJECT, uid, **overrides)
        return {"Authorization": f"Bearer {token}"}

    def buy(self, uid: str = "player-1", /, **body: Any) -> httpx.Response:
        payload = {"sku": "gems_500", "mode": "test", **body}
        return self.http.post(
            f"/v1/xsolla/{self.tenant_id}/payment-token", json=payload, headers=self.player(uid)
        )

    def configure(self, env: str = "test", **overrides: Any) -> httpx.Response:
        body = {
            "project_id": PROJECT_ID,
            "api_key": API_KEY,
            "webhook_secret": WEBHOOK_SECRET,
            "firebase_project_id": FIREBASE_PROJECT,
            "return_url_allowlist": ["https://game.example/", "mygame://payment"],
            **overrides,
        }
        return self.http.put("/v1/providers/xsolla", json=body, headers=self.auth(env))

    def item(self, sku: str, amount: int, env: str = "test", **extra: Any) -> httpx.Response:
        body = {
            "name": sku.replace("_", " ").title(),
            "price": {"amount": amount, "currency": "usd"},
            **extra,
        }
        return self.http.put(f"/v1/catalog/items/{sku}", json=body, headers=self.auth(env))


@contextlib.contextmanager
def open_game(
    rt: Runtime, sim: SimulatorState, fb_key: KeyPair, *, run_worker: bool = False
) -> Iterator[Game]:
    """A live caisse served as ``caisse serve`` serves it (uvicorn's proxy headers off: only
    CAISSE_TRUSTED_PROXIES decides about X-Forwarded-For), with a configured game tenant."""
    with (
        live_caisse(rt, run_worker=run_worker, proxy_headers=False) as live,
        httpx.Client(base_url=live.url, timeout=30) as http,
    ):
        admin = {"Authorization": f"Bearer {rt.settings.admin_token.reveal()}"}
        r = http.post("/v1/tenants", json={"name": "Game Studio"}, headers=admin)
        assert r.status_code == 201, r.text
        body = r.json()
        g = Game(http, live.url, rt, body["id"], body["api_keys"], fb_key, sim)
        assert g.configure().status_code == 200
        assert g.item("gems_500", 499).status_code == 201
        assert g.item("sword_01", 199).status_code == 201
        yield g


@pytest.fixture
def game(rt: Runtime, sim: SimulatorState, fb_key: KeyPair) -> Iterator[Game]:
    with open_game(rt, sim, fb_key) as g:
        yield g


@pytest.fixture
def make_game(
    settings: Settings, sim: SimulatorState, fb_key: KeyPair
) -> Iterator[Callable[..., Game]]:
    """A game on settings of the test's choosing: ``make_game(trusted_proxies=(...))``; one
    per test (it replaces the ``game`` fixture, not joins it)."""
    with contextlib.ExitStack() as stack:

        def make(run_worker: bool = False, **overrides: Any) -> Game:
            fields = {**settings.__dict__, **overrides}
            rt = Runtime.build(Settings(**fields))
            stack.callback(rt.close)
            return stack.enter_context(open_game(rt, sim, fb_key, run_worker=run_worker))

        yield make
