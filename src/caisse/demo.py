"""``caisse demo``: the whole path a real payment takes, on a fresh SQLite data folder.

It starts localstripe (a stateful fake of Stripe's API that sends signed webhooks) and caisse,
creates a tenant and its Stripe settings, creates an order (and its PaymentIntent), pays it the
way a browser would (PaymentMethod, then confirm), and watches the order turn ``paid`` as the
signed events arrive. localstripe sends ``payment_intent.succeeded`` itself; the other events a
real card payment produces (``payment_intent.created``, ``charge.succeeded``) are sent by
``caisse simulate``'s builder, signed with the tenant's secret, as ``stripe trigger`` would.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def caisse_server(env: dict[str, str], port: int) -> Iterator[str]:
    """caisse in this process, on a thread (uvicorn), with the in-process worker."""
    import uvicorn

    from caisse.config import Settings
    from caisse.storage.migrate import upgrade
    from caisse.web.app import create_app

    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_demo(data_dir: str | None = None) -> int:
    started = time.monotonic()
    folder = Path(data_dir or tempfile.mkdtemp(prefix="caisse-demo-")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    caisse_port, stripe_port = free_port(), free_port()
    admin = "cat_demo_" + secrets.token_urlsafe(16)
    console.rule("[bold]caisse demo")
    console.print(f"Data folder: [cyan]{folder}[/] (SQLite)")
    with localstripe(stripe_port) as stripe_url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CAISSE_")},
            "CAISSE_DATA_DIR": str(folder),
            "CAISSE_ADMIN_TOKEN": admin,
            "CAISSE_STRIPE_API_BASE": stripe_url,
            "CAISSE_PUBLIC_URL": f"http://127.0.0.1:{caisse_port}",
            "CAISSE_WORKER_POLL_INTERVAL": "0.2",
        }
        console.print(f"localstripe (fake Stripe API) on [cyan]{stripe_url}[/]")
        with caisse_server(env, caisse_port) as base:
            console.print(f"caisse on [cyan]{base}[/]\n")
            ok = _walkthrough(base, stripe_url, admin)
    elapsed = time.monotonic() - started
    console.rule(
        f"[bold {'green' if ok else 'red'}]demo {'passed' if ok else 'failed'} in {elapsed:.1f} s"
    )
    return 0 if ok else 1


def _step(text: str) -> None:
    console.print(f"[bold blue]▶[/] {text}")


def _walkthrough(base: str, stripe_url: str, admin: str) -> bool:
    import stripe

    from caisse.providers.stripe import simulate
    from caisse.providers.stripe.mapping import ORDER_METADATA_KEY, TENANT_METADATA_KEY

    http = httpx.Client(base_url=base, timeout=20)
    _step("The operator creates a tenant (a merchant)")
    tenant = (
        http.post(
            "/v1/tenants",
            json={"name": "Hôtel des Tilleuls"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        .raise_for_status()
        .json()
    )
    key = tenant["api_keys"]["test"]
    auth = {"Authorization": f"Bearer {key}"}
    console.print(f"  tenant [bold]{tenant['id']}[/], test key [dim]{key[:12]}…[/]")

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
