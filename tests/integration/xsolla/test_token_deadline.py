"""One Xsolla call per payment token request: the client's total deadline (against a loopback
server that trickles its answer, which httpx's per-phase timeout never stops), and the
idempotency resume path on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp
from tests.conftest import make_settings

from caisse.catalog.services import put_item
from caisse.clock import FrozenClock
from caisse.errors import IdempotencyConflict, ProviderTimeout
from caisse.orders import idempotency
from caisse.providers.xsolla.client import XsollaClient
from caisse.providers.xsolla.simulator import SimProject, SimulatorState, create_simulator_app
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.tenants.credentials import XsollaAccount, put_xsolla, xsolla_accounts
from caisse.tenants.services import Caller, create_tenant
from caisse.xsolla import players

PROJECT_ID = 44056
API_KEY = "sim-api-key-0123456789abcdef"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
TOKEN_PATH = "/api/v3/project/{project_id}/admin/payment/token"


def trickling(chunks: int, pause: float) -> ASGIApp:
    """A token endpoint that answers 201 at once, then sends its body a byte per ``pause``: each
    read is quick, so only a total deadline can end the exchange."""

    async def token(request: Request) -> StreamingResponse:
        await request.body()

        async def body() -> AsyncIterator[bytes]:
            yield b'{"token":"'
            for _ in range(chunks):
                await anyio.sleep(pause)
                yield b"a"
            yield b'","order_id":12345}'

        return StreamingResponse(body(), status_code=201, media_type="application/json")

    return Starlette(routes=[Route(TOKEN_PATH, token, methods=["POST"])])


@pytest.fixture(scope="module")
def slow_url(loopback: Callable[[ASGIApp], str]) -> str:
    return loopback(trickling(chunks=40, pause=0.1))


@pytest.fixture(scope="module")
def quick_url(loopback: Callable[[ASGIApp], str]) -> str:
    return loopback(trickling(chunks=3, pause=0.01))


async def call(client: XsollaClient, **kw: object) -> str:
    result = await client.create_payment_token(
        PROJECT_ID, API_KEY, user_id="uid", sku="gems_500", sandbox=True,
        external_id="ord_1", user_ip="203.0.113.7", **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return result.token


@pytest.mark.anyio
async def test_a_trickled_answer_is_cut_by_the_total_deadline(
    slow_url: str, quick_url: str
) -> None:
    async with httpx.AsyncClient() as http:
        assert await call(XsollaClient(quick_url, http=http, timeout=10)) == "aaa"
        # Each byte comes within 0.1 s, far under the 1 s per-phase timeout; the whole answer
        # would take 4 s: the total deadline of 1 s ends it.
        with pytest.raises(ProviderTimeout) as info:
            await call(XsollaClient(slow_url, http=http, timeout=1.0))
        assert info.value.__cause__ is None
        # A per-call deadline shortens the client's (never lengthens it).
        with pytest.raises(ProviderTimeout):
            await call(XsollaClient(slow_url, http=http, timeout=10), deadline=0.5)


# The resume path ------------------------------------------------------------------------------


class StalledClock(FrozenClock):
    """Frozen; once armed, every instant after the next one comes ``stall`` seconds later: a
    process that stalled between taking the claim and calling Xsolla."""

    def __init__(self, start: dt.datetime, stall: float) -> None:
        super().__init__(start)
        self._calls: int | None = None
        self._stall = stall

    def arm(self) -> None:
        self._calls = 0

    def now(self) -> dt.datetime:
        if self._calls is None:
            return super().now()
        self._calls += 1
        return super().now() + dt.timedelta(seconds=self._stall if self._calls > 1 else 0)


@pytest.fixture(scope="module")
def sim_state() -> SimulatorState:
    return SimulatorState()


@pytest.fixture(scope="module")
def sim_url(loopback: Callable[[ASGIApp], str], sim_state: SimulatorState) -> str:
    return loopback(create_simulator_app(sim_state))


@pytest.fixture
def sim(sim_state: SimulatorState) -> SimulatorState:
    project = SimProject(project_id=PROJECT_ID, api_key=API_KEY, webhook_secret="whsec-sim")
    project.add_item("gems_500", Decimal("4.99"))
    sim_state.projects = {PROJECT_ID: project}
    sim_state.orders.clear()
    sim_state.requests.clear()
    return sim_state


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def rt(tmp_path: Path, db_url: str, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = Runtime.build(make_settings(tmp_path, db_url), clock=clock)
    yield runtime
    runtime.close()


def account(rt: Runtime) -> XsollaAccount:
    with rt.db.write() as s:
        tenant, _ = create_tenant(s, rt.clock, "Game Studio")
        caller = Caller(tenant.id, "test")
        put_xsolla(s, rt.box, rt.clock, caller, {
            "project_id": PROJECT_ID, "api_key": API_KEY, "webhook_secret": "whsec-sim",
            "firebase_project_id": "caisse-game",
        })  # fmt: skip
        put_item(
            s, rt.clock, caller, "gems_500", name="500 gems", description=None,
            amount=499, currency="usd", status="available",
        )  # fmt: skip
        tenant_id = tenant.id
    with rt.db.read() as s:
        return xsolla_accounts(s, rt.box, tenant_id)["test"]


PLAYER = players.Player("player-1", None)
REQUEST = players.TokenRequest("gems_500", 1, None, "test")


def prepare(rt: Runtime, acc: XsollaAccount) -> Any:
    caller = Caller(acc.tenant_id, acc.environment)
    return players._prepare(rt, acc, PLAYER, REQUEST, caller, players._scope(PLAYER.uid), "k-1")


def test_a_stale_claim_is_resumed_once_with_one_xsolla_call(
    rt: Runtime, clock: FrozenClock, sim: SimulatorState, sim_url: str
) -> None:
    acc = account(rt)
    first = prepare(rt, acc)  # a request took the claim and stored its order, then crashed
    assert first.replay is None
    assert not first.has_token
    with pytest.raises(IdempotencyConflict):  # in progress: a retry waits
        prepare(rt, acc)
    clock.advance(idempotency.STALE_AFTER.total_seconds() + 1)
    resumed = prepare(rt, acc)  # stale: one retry takes it over...
    assert resumed.order_id == first.order_id
    with pytest.raises(IdempotencyConflict):  # ...and the claim is in progress again
        prepare(rt, acc)

    async def retry() -> tuple[int, dict[str, object]]:
        async with httpx.AsyncClient() as http:
            return await players.create_payment_token(
                rt, XsollaClient(sim_url, http=http), acc, PLAYER, REQUEST,
                user_ip="203.0.113.7", idempotency_key="k-1",
            )  # fmt: skip

    clock.advance(idempotency.STALE_AFTER.total_seconds() + 1)
    status, view = anyio.run(retry)
    assert status == 201
    assert view["order_id"] == first.order_id
    assert len(sim.requests) == 1
    assert anyio.run(retry)[1] == view  # a replay: no second call
    assert len(sim.requests) == 1


def test_a_call_that_would_outlive_the_claim_is_not_made(
    tmp_path: Path, db_url: str, sim: SimulatorState, sim_url: str
) -> None:
    stall = (idempotency.STALE_AFTER - players.CLAIM_MARGIN).total_seconds()
    clock = StalledClock(NOW, stall)
    stalled = Runtime.build(make_settings(tmp_path, db_url), clock=clock)
    try:
        acc = account(stalled)
        clock.arm()

        async def buy() -> None:
            async with httpx.AsyncClient() as http:
                await players.create_payment_token(
                    stalled, XsollaClient(sim_url, http=http), acc, PLAYER, REQUEST,
                    user_ip="203.0.113.7", idempotency_key="k-2",
                )  # fmt: skip

        with pytest.raises(ProviderTimeout):
            anyio.run(buy)
        assert sim.requests == []  # Xsolla was not called
        with stalled.db.read() as s:  # the order and the key were given up: a retry is clean
            assert s.query(m.XsollaOrder).count() == 0
            assert s.query(m.IdempotencyKey).count() == 0
    finally:
        stalled.close()
