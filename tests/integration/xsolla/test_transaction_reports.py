"""XsollaClient's transaction report calls (fast search by our order id, ``search.json``) against
the simulator on loopback: the adapter's domain values, 404 as "no transaction", and errors."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from starlette.types import ASGIApp

from caisse.clock import FrozenClock
from caisse.errors import InvalidRequest, ProviderUnavailable
from caisse.providers.xsolla.client import XsollaClient, XsollaRejected
from caisse.providers.xsolla.simulator import SimProject, SimulatorState, create_simulator_app

pytestmark = pytest.mark.anyio

PROJECT_ID = 44056
MERCHANT_ID = 887981
API_KEY = "sim-api-key-0123456789abcdef"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class Served:
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
def state(served: Served) -> SimulatorState:
    project = SimProject(project_id=PROJECT_ID, api_key=API_KEY, webhook_secret="whsecret-123")
    project.add_item("gems_500", Decimal("4.99"))
    served.state = SimulatorState([project], clock=FrozenClock(NOW))
    return served.state


@pytest.fixture
async def client(served: Served, state: SimulatorState) -> AsyncIterator[XsollaClient]:
    async with httpx.AsyncClient() as http:
        # The store and merchant APIs are two hosts at Xsolla; the simulator serves both.
        yield XsollaClient(served.url, merchant_api_base=served.url, http=http, timeout=2)


def paid(state: SimulatorState, external_id: str, *, sandbox: bool = True) -> int:
    order = state.create_order(
        state.projects[PROJECT_ID],
        user_id="uid-1",
        lines=[("gems_500", 2)],
        sandbox=sandbox,
        external_id=external_id,
        country="FR",
    )
    state.pay(order.order_id)
    return order.order_id


async def test_fast_search_by_external_id_returns_domain_values(
    client: XsollaClient, state: SimulatorState
) -> None:
    xid = paid(state, "ord_A")
    (tx,) = await client.find_transactions_fast(MERCHANT_ID, API_KEY, external_id="ord_A")
    assert tx.id == str(state.orders[xid].transaction_id)
    assert (tx.external_id, tx.status, tx.project_id, tx.user_id) == (
        "ord_A",
        "done",
        str(PROJECT_ID),
        "uid-1",
    )
    assert (tx.amount, tx.currency) == (Decimal("9.98"), "USD")
    assert tx.payment_date == NOW
    assert tx.dry_run is None  # the fast search documents no dry_run field
    request = state.requests[-1]
    assert request.method == "GET"
    assert (
        request.path == f"/merchant/v2/merchants/{MERCHANT_ID}/reports/transactions/simple_search"
    )
    expected = base64.b64encode(f"{MERCHANT_ID}:{API_KEY}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"

    state.cancel(xid)
    (again,) = await client.find_transactions_fast(MERCHANT_ID, API_KEY, external_id="ord_A")
    assert again.status == "refunded"
    assert again.refund_reason


async def test_fast_search_without_transaction_is_empty(
    client: XsollaClient, state: SimulatorState
) -> None:
    state.create_order(
        state.projects[PROJECT_ID], user_id="u", lines=[("gems_500", 1)], sandbox=True,
        external_id="ord_unpaid",
    )  # fmt: skip
    assert await client.find_transactions_fast(MERCHANT_ID, API_KEY, external_id="ord_unpaid") == ()
    with pytest.raises(InvalidRequest):
        await client.find_transactions_fast(MERCHANT_ID, API_KEY)


async def test_merchant_credentials_are_checked(
    client: XsollaClient, state: SimulatorState
) -> None:
    paid(state, "ord_B")
    with pytest.raises(XsollaRejected) as wrong_key:
        await client.find_transactions_fast(MERCHANT_ID, "not-the-key", external_id="ord_B")
    assert wrong_key.value.status_code == 401
    assert "not-the-key" not in wrong_key.value.message
    with pytest.raises(XsollaRejected) as project_as_merchant:
        await client.find_transactions_fast(PROJECT_ID, API_KEY, external_id="ord_B")
    assert project_as_merchant.value.status_code == 401


async def test_search_json_filters_status_project_and_sandbox(
    client: XsollaClient, state: SimulatorState
) -> None:
    kept = paid(state, "ord_sandbox_refunded")
    state.cancel(kept)
    paid(state, "ord_sandbox_done")
    live = paid(state, "ord_live_refunded", sandbox=False)
    state.cancel(live)

    async def search(**kw: object) -> list[str | None]:
        rows = await client.search_transactions(
            MERCHANT_ID,
            API_KEY,
            project_id=PROJECT_ID,
            datetime_from=NOW - dt.timedelta(days=1),
            datetime_to=NOW + dt.timedelta(minutes=1),
            **kw,  # type: ignore[arg-type]
        )
        return sorted(r.external_id for r in rows if r.external_id)

    assert await search(status="refunded") == ["ord_live_refunded"]
    assert await search(status="refunded", dry_run=True) == [
        "ord_live_refunded",
        "ord_sandbox_refunded",
    ]
    assert await search(dry_run=True, limit=1, offset=1) == ["ord_sandbox_done"]
    rows = await client.search_transactions(
        MERCHANT_ID, API_KEY, project_id=PROJECT_ID, datetime_from=NOW - dt.timedelta(days=2),
        datetime_to=NOW - dt.timedelta(days=1), dry_run=True,
    )  # fmt: skip
    assert rows == ()
    (row,) = await client.search_transactions(
        MERCHANT_ID, API_KEY, project_id=PROJECT_ID, datetime_from=NOW - dt.timedelta(days=1),
        datetime_to=NOW + dt.timedelta(days=1), status="refunded",
    )  # fmt: skip
    assert row.dry_run is False
    assert row.payment_method == "Bank card"


async def test_outages_map_to_provider_errors(client: XsollaClient, state: SimulatorState) -> None:
    state.fail_next(503)
    with pytest.raises(ProviderUnavailable):
        await client.find_transactions_fast(MERCHANT_ID, API_KEY, external_id="x")
    state.fail_next(429)
    with pytest.raises(XsollaRejected) as limited:
        await client.find_transactions_fast(MERCHANT_ID, API_KEY, external_id="x")
    assert limited.value.status_code == 429
