"""The extranet in headless Chromium (Debian's package, driven by Playwright), against a real
caisse server with its worker, on both engines: sign in, Stripe keys, seller details, a partner
endpoint on a real loopback receiver (test webhook, delivery log), Xsolla settings and the
catalogue, an order's timeline and its invoice downloaded.

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
from standardwebhooks import Webhook
from tests.support import partners
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
    # The partner receiver listens on loopback: CAISSE_ALLOW_PRIVATE_TARGETS for this test.
    fields = {"stripe_api_base": localstripe_url, "allow_private_targets": True}
    rt.settings = Settings(**{**rt.settings.__dict__, **fields})
    with live_caisse(rt) as live:
        yield live


@pytest.fixture
def partner() -> Iterator[partners.PartnerServer]:
    with partners.ok(body=b'{"received": true, "ref": "CA-1"}') as p:
        yield p


def test_merchant_flow(browser, server, rt, db_url, partner):  # type: ignore[no-untyped-def]
    shots = os.environ.get("CAISSE_SCREENSHOTS_DIR") if db_url.startswith("sqlite") else None
    api = httpx.Client(base_url=server.url, timeout=30)
    merchant = _tenant(api, rt)
    email, password = new_user(rt, merchant.tenant_id, email="anne@hotel-exemple.fr")
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=server.url,
        locale="en-GB",
        viewport={"width": 1280, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
        accept_downloads=True,
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

    # Seller details, printed on the invoices to come.
    page.click("nav >> text=Seller")
    page.fill("#legal_legal_name", "Hôtel des Tests SARL")
    page.fill("#legal_address_line1", "1 quai de la Fosse")
    page.fill("#legal_postcode", "44000")
    page.fill("#legal_city", "Nantes")
    page.fill("#legal_country", "FR")
    page.click("button:has-text('Save')")
    page.wait_for_selector("[data-testid=done]")
    snap("seller")

    # A partner endpoint on a real receiver: the secret shown once, then masked; a test webhook.
    page.click("nav >> text=Partners")
    api_key = "partner-key-" + secrets.token_hex(16)
    page.fill("#url", partner.url)
    page.fill("#api_key", api_key)
    page.check("input[name=event_types][value='order.paid']")
    page.check("input[name=event_types][value='invoice.issued']")
    page.fill("#description", "Compta staging")
    snap("partners")
    page.click("form[action='/ui/partners'] button[type=submit]")
    page.wait_for_selector("[data-testid=secret-once]")
    secret = page.get_by_test_id("new-secret").input_value()
    assert secret.startswith("whsec_")
    page.locator("button[data-copy='#new_secret']").click()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.get_by_test_id("send-test").click()
    page.wait_for_selector("[data-testid=test-result]")
    assert page.get_by_test_id("test-status").inner_text() == "HTTP 200"
    assert page.get_by_test_id("test-duration").inner_text().endswith(" ms")
    assert secret not in page.content()
    assert api_key not in page.content()
    assert page.get_by_test_id("secret-masked").inner_text() == "whsec_••••••••" + secret[-4:]
    test_message = Webhook(secret).verify(partner.requests[0].body, partner.requests[0].header_dict)
    assert test_message["type"] == "endpoint.test"

    # Xsolla settings (masked once saved) and a catalogue item.
    page.click("nav >> text=Xsolla")
    xsolla_key = "xsolla-" + secrets.token_hex(12)
    page.fill("#merchant_id", "123456")
    page.fill("#project_id", "271828")
    page.fill("#xs_api_key", xsolla_key)
    page.fill("#xs_webhook_secret", "xsolla-hook-" + secrets.token_hex(12))
    page.fill("#firebase_project_id", "demo-hotel-games")
    page.fill("#return_url_allowlist", "https://game.example/after-pay")
    page.click("button:has-text('Save Xsolla settings')")
    page.wait_for_selector("[data-testid=done]")
    assert page.get_by_test_id("api-key-masked").inner_text().endswith(xsolla_key[-4:])
    assert xsolla_key not in page.content()
    snap("xsolla-settings")
    page.click("nav >> text=Catalogue")
    page.fill("#sku", "gems.100")
    page.fill("#name", "100 gems")
    page.fill("#price", "4.99")
    page.fill("#currency", "EUR")
    page.click("form[action='/ui/catalog'] button[type=submit]")
    page.wait_for_selector("[data-testid=items] >> text=4.99 EUR")
    snap("catalog")

    # An order comes in through the API (the merchant's site), then a test event about it.
    key = merchant.keys["test"]
    r = api.post(
        "/v1/orders",
        json=order_body(4200),
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": secrets.token_hex(8)},
    )
    assert r.status_code == 201, r.text
    order = r.json()
    page.click("nav >> text=Stripe")
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

    # The invoice: issued by the worker, downloaded from the order page.
    _wait_invoice(rt, order["id"])
    page.reload()
    link = page.locator("[data-testid=documents] a").first
    with page.expect_download() as download:
        link.click()
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert download.value.suggested_filename.endswith(".pdf")
    snap("order")

    # The partner got order.paid; the delivery log shows it with its status code.
    _wait_delivered(rt, "order.paid")
    page.click("nav >> text=Partners")
    page.click(f"[data-testid=endpoints] >> text={partner.url}")
    page.wait_for_selector("[data-testid=deliveries]")
    log = page.get_by_test_id("deliveries").inner_text()
    assert "order.paid" in log
    assert "200" in log
    assert "delivered" in log
    assert '"ref": "CA-1"' in log  # the first bytes of the partner's answer
    snap("partner")

    # A colleague invited: the link is shown once (and mailed).
    page.click("nav >> text=Users")
    page.fill("#invite-email", "paul@hotel-exemple.fr")
    page.click("form[action='/ui/users'] button[type=submit]")
    page.wait_for_selector("[data-testid=invited]")
    snap("users")

    # The dashboard checklist, then French.
    page.click("nav >> text=Dashboard")
    snap("dashboard")
    page.click("a[lang=fr]")
    page.wait_for_selector("text=Premiers pas")
    snap("dashboard-fr")
    page.click("text=Se déconnecter")
    page.wait_for_url("**/ui/login?signed_out=1")
    context.close()


def test_keyboard_small_screens_and_an_invitation(browser, server, rt):  # type: ignore[no-untyped-def]
    api = httpx.Client(base_url=server.url, timeout=30)
    merchant = _tenant(api, rt)
    email, password = new_user(rt, merchant.tenant_id)
    context = browser.new_context(base_url=server.url, locale="en-GB")  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto("/ui/login")
    # The first Tab lands on the skip link, drawn with a visible (>= 3:1) focus ring.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    ring = page.evaluate("getComputedStyle(document.activeElement).outlineColor")
    assert ring == "rgb(67, 56, 202)"
    page.fill("#email", email)
    page.fill("#password", password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/")

    # The test/live switch works from the keyboard.
    toggle = page.get_by_test_id("mode-toggle")
    toggle.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=test-banner]")
    toggle = page.get_by_test_id("mode-toggle")
    assert toggle.get_attribute("aria-checked") == "true"
    toggle.focus()
    page.keyboard.press("Space")
    page.wait_for_selector("[data-testid=test-banner]", state="detached")

    # A phone: no page scrolls sideways.
    page.set_viewport_size({"width": 375, "height": 740})
    for path in ("/ui/", "/ui/orders", "/ui/users"):
        page.goto(path)
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (path, width)

    # Invite a colleague; the link shown once opens, in another browser, the password form.
    page.goto("/ui/users")
    page.fill("#invite-email", "colleague@example.com")
    page.click("form[action='/ui/users'] button[type=submit]")
    link = page.get_by_test_id("invite-link").input_value()
    assert "/ui/invite/" in link
    other = browser.new_context(base_url=server.url, locale="fr-FR")  # type: ignore[attr-defined]
    invitee = other.new_page()
    invitee.goto(link.split(rt.settings.public_url, 1)[1])  # the server runs on another port
    invitee.fill("#password", "my own long password")
    invitee.fill("#confirm", "my own long password")
    invitee.click("button[type=submit]")
    invitee.wait_for_url("**/ui/")
    assert "colleague@example.com" in invitee.content()
    other.close()
    context.close()


def _tenant(api: httpx.Client, rt) -> Merchant:  # type: ignore[no-untyped-def]
    admin = {"Authorization": f"Bearer {rt.settings.admin_token.reveal()}"}
    r = api.post("/v1/tenants", json={"name": "Hôtel des Tests"}, headers=admin)
    assert r.status_code == 201, r.text
    body = r.json()
    return Merchant(body["id"], body["api_keys"])


def _wait_invoice(rt, order_id: str) -> None:  # type: ignore[no-untyped-def]
    def issued() -> bool:
        with rt.db.read() as s:
            return bool(
                s.execute(
                    select(m.Invoice.pdf_sha256).where(
                        m.Invoice.order_id == order_id, m.Invoice.kind == "invoice"
                    )
                ).scalar_one_or_none()
            )

    wait_for(issued, timeout=60)


def _wait_delivered(rt, event_type: str) -> None:  # type: ignore[no-untyped-def]
    def delivered() -> bool:
        with rt.db.read() as s:
            return (
                s.execute(
                    select(m.Delivery.status).where(m.Delivery.event_type == event_type)
                ).scalar_one_or_none()
                == "delivered"
            )

    wait_for(delivered, timeout=60)


def _wait_processed(rt, order_id: str) -> None:  # type: ignore[no-untyped-def]
    def done() -> bool:
        with rt.db.read() as s:
            return (
                s.execute(select(m.Order.status).where(m.Order.id == order_id)).scalar_one()
                == "paid"
            )

    wait_for(done, timeout=30)
