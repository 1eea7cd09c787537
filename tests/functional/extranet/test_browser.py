"""The extranet in headless Chromium (Debian's package, driven by Playwright), against a real
caisse server with its worker, on both engines.

Set ``CAISSE_SCREENSHOTS_DIR`` to also save screenshots of the main pages (SQLite run only);
``scripts/screenshots.py`` does that for ``docs/img/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from tests.support.api import Merchant, order_body, wait_for
from tests.support.extranet import new_user
from tests.support.servers import live_caisse

from caisse.config import Settings
from caisse.storage import models as m

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CAISSE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"No Chromium at {CHROMIUM}: run `make browser`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def server(rt, localstripe_url):  # type: ignore[no-untyped-def]
    rt.settings = Settings(**{**rt.settings.__dict__, "stripe_api_base": localstripe_url})
    with live_caisse(rt) as live:
        yield live


def test_merchant_flow(browser, server, rt, db_url):  # type: ignore[no-untyped-def]
    shots = os.environ.get("CAISSE_SCREENSHOTS_DIR") if db_url.startswith("sqlite") else None
    api = httpx.Client(base_url=server.url, timeout=30)
    merchant = _tenant(api, rt)
    email, password = new_user(rt, merchant.tenant_id, email="anne@hotel-exemple.fr")
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=server.url,
        locale="en-GB",
        viewport={"width": 1280, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = context.new_page()

    def snap(name: str) -> None:
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"{name}.png"), full_page=True)

    # Log in.
    page.goto("/ui/")
    assert page.url.endswith("/ui/login?next=/ui/")
    snap("login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/")
    # Switch to test: the toggle, the banner, on every page.
    toggle = page.get_by_test_id("mode-toggle")
    assert toggle.get_attribute("aria-checked") == "false"
    toggle.click()
    page.wait_for_selector("[data-testid=test-banner]")
    assert page.get_by_test_id("mode-toggle").get_attribute("aria-checked") == "true"

    # Paste the keys, see them masked.
    page.click("text=Stripe")
    pk, sk = "pk_test_" + secrets.token_hex(12), "sk_test_" + secrets.token_hex(12)
    whsec = "whsec_" + secrets.token_urlsafe(24)
    page.fill("#publishable_key", pk)
    page.fill("#secret_key", sk)
    page.fill("#webhook_secret", whsec)
    page.click("text=Save keys")
    page.wait_for_selector("[data-testid=done]")
    assert page.get_by_test_id("sk-masked").inner_text() == "sk_test_••••••••" + sk[-4:]
    assert sk not in page.content()
    assert whsec not in page.content()
    assert page.get_by_test_id("secrets").inner_text().count("whsec_••••••••") == 1

    # Copy the webhook URL.
    expected = f"{rt.settings.public_url}/callbacks/v1.0/stripe/{merchant.tenant_id}"
    page.locator("button[data-copy='#webhook_url']").click()
    assert page.evaluate("navigator.clipboard.readText()") == expected
    snap("stripe-settings")

    # An order comes in through the API (the merchant's site), then a test event about it.
    key = merchant.keys["test"]
    r = api.post(
        "/v1/orders",
        json=order_body(4200),
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": secrets.token_hex(8)},
    )
    assert r.status_code == 201, r.text
    order = r.json()
    page.reload()
    page.select_option("#event_type", "payment_intent.succeeded")
    page.select_option("#order_id", order["id"])
    page.click("section:has(#event_type) button[type=submit]")
    page.wait_for_url("**/ui/events/evt_*")
    page.wait_for_selector("[data-testid=sent]")
    _wait_processed(rt, order["id"])
    page.reload()
    assert "processed" in page.get_by_test_id("event-status").inner_text()
    snap("event")

    # Open the order's timeline from the list.
    page.click("nav >> text=Orders")
    page.wait_for_selector("[data-testid=orders]")
    snap("orders")
    page.click(f"text={order['id']}")
    page.wait_for_selector("[data-testid=timeline]")
    timeline = page.get_by_test_id("timeline").inner_text()
    assert "payment_intent.succeeded" in timeline
    assert "42.00 EUR" in page.get_by_test_id("amount-paid").inner_text()
    assert "order.paid" in page.get_by_test_id("messages").inner_text()
    snap("order")

    # The dashboard checklist, then French.
    page.click("nav >> text=Dashboard")
    snap("dashboard")
    page.click("a[lang=fr]")
    page.wait_for_selector("text=Premiers pas")
    snap("dashboard-fr")
    page.click("text=Se déconnecter")
    page.wait_for_url("**/ui/login?signed_out=1")
    context.close()


def _tenant(api: httpx.Client, rt) -> Merchant:  # type: ignore[no-untyped-def]
    admin = {"Authorization": f"Bearer {rt.settings.admin_token.reveal()}"}
    r = api.post("/v1/tenants", json={"name": "Hôtel des Tests"}, headers=admin)
    assert r.status_code == 201, r.text
    body = r.json()
    return Merchant(body["id"], body["api_keys"])


def _wait_processed(rt, order_id: str) -> None:  # type: ignore[no-untyped-def]
    def done() -> bool:
        with rt.db.read() as s:
            return (
                s.execute(select(m.Order.status).where(m.Order.id == order_id)).scalar_one()
                == "paid"
            )

    wait_for(done, timeout=30)
