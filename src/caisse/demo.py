"""``caisse demo``: the whole path a real payment takes, on a fresh SQLite data folder.

It starts localstripe (a stateful fake of Stripe's API that sends signed webhooks) and caisse,
creates a tenant and its Stripe settings, creates an order (and its PaymentIntent), pays it the
way a browser would (PaymentMethod, then confirm), and watches the order turn ``paid`` as the
signed events arrive. localstripe sends ``payment_intent.succeeded`` itself; the other events a
real card payment produces (``payment_intent.created``, ``charge.succeeded``) are sent by
``caisse simulate``'s builder, signed with the tenant's secret, as ``stripe trigger`` would.

Then the Xsolla leg (``caisse.demo_xsolla``): the same tenant sells a catalogue SKU to a Firebase
player through the Xsolla simulator, and the signed ``order_paid`` webhook grants it.

The data folder is always a fresh SQLite one: ``CAISSE_*`` variables and any ``.env`` file are
ignored (a ``.env`` pointing ``CAISSE_DATABASE_URL`` at a real database must not receive demo
data). Without localstripe (the dev extras) the Stripe leg is skipped with a hint.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from starlette.types import ASGIApp

console = Console()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def localstripe(port: int) -> Iterator[str]:
    """Run localstripe in a child process (it keeps its store in a temp file: --from-scratch)."""
    code = "import sys; from localstripe.server import start; sys.exit(start())"
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", code, "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v1/balance")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def has_localstripe() -> bool:
    """localstripe comes with the dev extras (``make demo`` installs them)."""
    try:
        return importlib.util.find_spec("localstripe.server") is not None
    except ImportError:  # a broken or shadowed install counts as missing
        return False


@contextlib.contextmanager
def serve_app(app: ASGIApp, port: int | None = None, health: str | None = None) -> Iterator[str]:
    """An ASGI app on 127.0.0.1 with uvicorn in a thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port or free_port(), log_level="error", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.config.port}"
    try:
        if health is not None:
            wait_http(url + health)
        else:
            while not server.started and thread.is_alive():
                time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def caisse_server(env: dict[str, str], port: int) -> Iterator[str]:
    """caisse in this process, on a thread (uvicorn), with the in-process worker."""
    from caisse.config import Settings
    from caisse.storage.migrate import upgrade
    from caisse.web.app import create_app

    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    with serve_app(create_app(settings), port, health="/healthz") as url:
        yield url


def demo_env(folder: Path, admin: str, caisse_port: int, **peers: str) -> dict[str, str]:
    """The demo's settings: the process environment without any ``CAISSE_*`` variable, no
    ``.env`` file, SQLite in ``folder``, and the loopback peers."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAISSE_")},
        "CAISSE_ENV_FILE": os.devnull,  # not a regular file: no .env is read
        "CAISSE_DATA_DIR": str(folder),
        "CAISSE_DATABASE_URL": f"sqlite:///{folder / 'caisse.db'}",
        "CAISSE_ADMIN_TOKEN": admin,
        "CAISSE_PUBLIC_URL": f"http://127.0.0.1:{caisse_port}",
        "CAISSE_WORKER_POLL_INTERVAL": "0.2",
        **peers,
    }


def run_demo(data_dir: str | None = None) -> int:
    from caisse import demo_xsolla

    started = time.monotonic()
    folder = Path(data_dir or tempfile.mkdtemp(prefix="caisse-demo-")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    caisse_port = free_port()
    admin = "cat_demo_" + secrets.token_urlsafe(16)
    console.rule("[bold]caisse demo")
    console.print(f"Data folder: [cyan]{folder}[/] (SQLite; CAISSE_* variables and .env ignored)")
    with_stripe = has_localstripe()
    if not with_stripe:
        console.print(
            "[yellow]localstripe is not installed: the Stripe leg is skipped.[/] It comes with "
            "the dev extras: [bold]make demo[/], or [bold]pip install -e '.[dev]'[/]."
        )
    with contextlib.ExitStack() as stack:
        peers: dict[str, str] = {}
        stripe_url = ""
        if with_stripe:
            stripe_url = stack.enter_context(localstripe(free_port()))
            peers["CAISSE_STRIPE_API_BASE"] = stripe_url
            console.print(f"localstripe (fake Stripe API) on [cyan]{stripe_url}[/]")
        world = stack.enter_context(demo_xsolla.xsolla_peers(serve_app))
        peers["CAISSE_XSOLLA_API_BASE"] = world.sim_url
        peers["CAISSE_FIREBASE_CERTS_URL"] = world.certs_url
        console.print(
            f"Xsolla simulator on [cyan]{world.sim_url}[/], "
            f"Firebase certificates on [cyan]{world.certs_url}[/]"
        )
        base = stack.enter_context(
            caisse_server(demo_env(folder, admin, caisse_port, **peers), caisse_port)
        )
        console.print(f"caisse on [cyan]{base}[/]\n")
        tenant = _create_tenant(base, admin)
        ok = _walkthrough(base, stripe_url, tenant) if with_stripe else True
        console.rule("[bold]Xsolla Pay Station for a Firebase player")
        ok = (
            demo_xsolla.walkthrough(console, base, tenant["id"], tenant["api_keys"]["test"], world)
            and ok
        )
    elapsed = time.monotonic() - started
    skipped = "" if with_stripe else " (Stripe leg skipped)"
    console.rule(
        f"[bold {'green' if ok else 'red'}]demo {'passed' if ok else 'failed'}{skipped} "
        f"in {elapsed:.1f} s"
    )
    return 0 if ok else 1


def _step(text: str) -> None:
    console.print(f"[bold blue]▶[/] {text}")


def _create_tenant(base: str, admin: str) -> dict[str, Any]:
    _step("The operator creates a tenant (a merchant)")
    tenant: dict[str, Any] = (
        httpx.post(
            f"{base}/v1/tenants",
            json={"name": "Hôtel des Tilleuls"},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=20,
        )
        .raise_for_status()
        .json()
    )
    console.print(
        f"  tenant [bold]{tenant['id']}[/], test key [dim]{tenant['api_keys']['test'][:12]}…[/]"
    )
    return tenant


def _walkthrough(base: str, stripe_url: str, tenant: dict[str, Any]) -> bool:
    import stripe

    from caisse.providers.stripe import simulate
    from caisse.providers.stripe.mapping import ORDER_METADATA_KEY, TENANT_METADATA_KEY

    http = httpx.Client(base_url=base, timeout=20)
    key = tenant["api_keys"]["test"]
    auth = {"Authorization": f"Bearer {key}"}

    _step("The merchant pastes its Stripe keys and webhook signing secret")
    whsec = "whsec_" + secrets.token_urlsafe(24)
    settings = (
        http.put(
            "/v1/providers/stripe",
            headers=auth,
            json={
                "publishable_key": "pk_test_" + secrets.token_hex(12),
                "secret_key": "sk_test_" + secrets.token_hex(12),
                "webhook_secrets": [whsec],
            },
        )
        .raise_for_status()
        .json()
    )
    console.print(
        f"  secret key shown as [bold]{settings['secret_key']}[/]; "
        f"webhook URL [cyan]{settings['webhook_url']}[/]"
    )
    console.print(f"  {len(settings['enabled_events'])} event types to select in Stripe")
    httpx.post(
        f"{stripe_url}/_config/webhooks/caisse",
        data={"url": settings["webhook_url"], "secret": whsec},
        auth=("sk_test_demo", ""),
    ).raise_for_status()

    _step("The platform creates an order (caisse creates its PaymentIntent at Stripe)")
    order = (
        http.post(
            "/v1/orders",
            headers={**auth, "Idempotency-Key": "demo-order-1"},
            json={
                "reference": "BOOKING-2041",
                "customer": {"email": "alice@example.com", "name": "Alice Martin"},
                "currency": "eur",
                "lines": [
                    {
                        "description": "Chambre double, 2 nuits",
                        "quantity": 2,
                        "unit_amount": 8900,
                        "tax_rate": "10",
                    },
                    {
                        "description": "Petit-déjeuner",
                        "quantity": 2,
                        "unit_amount": 1200,
                        "tax_rate": "10",
                    },
                ],
            },
        )
        .raise_for_status()
        .json()
    )
    pi_id = order["payment"]["payment_intent"]
    console.print(
        f"  order [bold]{order['id']}[/] {order['amount_total'] / 100:.2f} EUR, "
        f"status [yellow]{order['status']}[/], PaymentIntent {pi_id}"
    )

    _step("The buyer pays by card (PaymentMethod, then confirm), as Stripe.js would")
    client = stripe.StripeClient("sk_test_demo", base_addresses={"api": stripe_url})
    meta = {ORDER_METADATA_KEY: order["id"], TENANT_METADATA_KEY: tenant["id"]}
    created = simulate.build_event(
        "payment_intent.created",
        livemode=False,
        payment_intent_id=pi_id,
        amount=order["amount_total"],
        metadata=meta,
    )
    _send(settings["webhook_url"], whsec, created)
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    client.v1.payment_intents.update(pi_id, params={"payment_method": pm.id})
    client.v1.payment_intents.confirm(pi_id)
    charge = simulate.build_event(
        "charge.succeeded",
        livemode=False,
        payment_intent_id=pi_id,
        amount=order["amount_total"],
        metadata=meta,
    )
    _send(settings["webhook_url"], whsec, charge)

    _step("Stripe's signed events arrive; caisse stores each once and applies it")
    final = _wait_paid(http, auth, order["id"])
    _show(http, auth, final)
    return bool(final["status"] == "paid")


def _send(url: str, secret: str, event: dict[str, Any]) -> None:
    from caisse.providers.stripe import simulate

    body, headers = simulate.signed_delivery(event, [secret])
    r = httpx.post(url, content=body, headers=headers, timeout=10)
    console.print(f"  [green]{r.status_code}[/] {event['type']} [dim]{event['id']}[/]")


def _wait_paid(http: httpx.Client, auth: dict[str, str], order_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    order: dict[str, Any] = {}
    while time.monotonic() < deadline:
        order = http.get(f"/v1/orders/{order_id}", headers=auth).json()
        events = http.get("/v1/events", headers=auth, params={"order_id": order_id}).json()
        done = [e for e in events["data"] if e["status"] != "pending"]
        if order.get("status") == "paid" and len(done) >= 3:
            break
        time.sleep(0.25)
    return order


def _show(http: httpx.Client, auth: dict[str, str], order: dict[str, Any]) -> None:
    colour = "green" if order["status"] == "paid" else "red"
    console.print(
        Panel.fit(
            f"order {order['id']}  ·  reference {order['reference']}\n"
            f"status [bold {colour}]{order['status']}[/]   paid "
            f"{order['amount_paid'] / 100:.2f} / {order['amount_total'] / 100:.2f} "
            f"{order['currency'].upper()}",
            title="Order",
        )
    )
    timeline = http.get(f"/v1/orders/{order['id']}/timeline", headers=auth).json()["data"]
    table = Table("time", "what happened", "details", title="Order timeline")
    for item in timeline:
        when = time.strftime("%H:%M:%S", time.gmtime(item["created"]))
        table.add_row(when, item["type"], ", ".join(f"{k}={v}" for k, v in item["data"].items()))
    console.print(table)
    events = http.get("/v1/events", headers=auth).json()["data"]
    table = Table("event", "type", "status", title="Inbound Stripe events (newest first)")
    for ev in events:
        table.add_row(ev["provider_event_id"], ev["type"], ev["status"])
    console.print(table)
