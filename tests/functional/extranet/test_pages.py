"""The extranet pages over plain HTTP, on both engines: sign-in, the test/live switch, the
Stripe settings flow, orders, events and users."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import select
from tests.support.api import create_order, drain, order_body, order_meta, post_event
from tests.support.extranet import csrf_of, new_user, switch

from caisse.providers.stripe import simulate
from caisse.providers.stripe.catalog import SUBSCRIBED_EVENT_TYPES
from caisse.providers.stripe.client import StripeGateway
from caisse.storage import models as m

NO_REDIRECT = {"follow_redirects": False}


def post(client, path, csrf, **data):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf, **data}, **NO_REDIRECT)


def test_pages_need_a_session_and_bounce_back_after_login(client, rt):
    r = client.get("/ui/orders?status=paid", **NO_REDIRECT)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=/ui/orders%3Fstatus%3Dpaid"
    merchant_email, password = new_user(rt, _tenant(client, rt))
    page = client.get("/ui/login?next=/ui/orders")
    r = client.post(
        "/ui/login",
        data={
            "email": merchant_email,
            "password": password,
            "csrf_token": csrf_of(page.text),
            "next": "/ui/orders",
        },
        **NO_REDIRECT,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/orders"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/ui" in cookie
    assert "Secure" not in cookie  # the public URL is http://127.0.0.1 here


def _tenant(client, rt) -> str:  # type: ignore[no-untyped-def]
    admin = {"Authorization": f"Bearer {rt.settings.admin_token.reveal()}"}
    return str(client.post("/v1/tenants", json={"name": "T"}, headers=admin).json()["id"])


def test_login_refuses_wrong_password_and_never_redirects_off_site(client, rt):
    email, _ = new_user(rt, _tenant(client, rt))
    page = client.get("/ui/login")
    r = client.post(
        "/ui/login",
        data={"email": email, "password": "wrong password!", "csrf_token": csrf_of(page.text)},
        **NO_REDIRECT,
    )
    assert r.status_code == 401
    assert "Wrong email or password" in r.text
    email2, pw2 = new_user(rt, _tenant(client, rt))
    page = client.get("/ui/login")
    r = client.post(
        "/ui/login",
        data={
            "email": email2,
            "password": pw2,
            "next": "//evil.example/x",
            "csrf_token": csrf_of(page.text),
        },
        **NO_REDIRECT,
    )
    assert r.headers["location"] == "/ui/"


def test_logout_ends_the_session_for_good(client, ui):
    old = client.cookies.get("caisse_session")
    r = post(client, "/ui/logout", ui.csrf)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?signed_out=1"
    client.cookies.set("caisse_session", old, path="/ui")  # replay the old cookie
    assert client.get("/ui/", **NO_REDIRECT).status_code == 303


def test_switch_is_on_every_page_and_marks_test_data(client, ui):
    live = client.get("/ui/orders")
    assert 'aria-checked="false"' in live.text
    assert "test-banner" not in live.text
    r = post(client, "/ui/mode", ui.csrf, environment="test", next="/ui/settings/stripe")
    assert r.headers["location"] == "/ui/settings/stripe"
    for path in ("/ui/", "/ui/orders", "/ui/events", "/ui/settings/stripe", "/ui/users"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'aria-checked="true"' in page.text, path
        assert "TEST DATA" in page.text, path
    order = create_order(client, ui.merchant)
    assert "badge-test" in client.get("/ui/orders").text
    r = post(client, "/ui/mode", ui.csrf, environment="live", next=f"/ui/orders/{order['id']}")
    assert r.headers["location"] == "/ui/orders"  # not the test order, unknown in live
    assert order["id"] not in client.get("/ui/orders").text


def test_language_from_browser_then_from_choice(client, ui):
    assert "Commandes" in client.get("/ui/", headers={"Accept-Language": "fr-FR,fr;q=0.9"}).text
    client.get("/ui/lang/fr?next=/ui/orders", **NO_REDIRECT)
    page = client.get("/ui/orders", headers={"Accept-Language": "en"})
    assert '<html lang="fr">' in page.text
    assert "Filtrer" in page.text
    client.get("/ui/lang/en?next=/ui/", **NO_REDIRECT)
    assert "Filter" in client.get("/ui/orders").text


def test_stripe_settings_flow(client, rt, ui):
    switch(client, ui.csrf, "test")
    pk, sk = "pk_test_" + secrets.token_hex(12), "sk_test_" + secrets.token_hex(12)
    whsec = "whsec_" + secrets.token_urlsafe(24)
    r = post(
        client,
        "/ui/settings/stripe",
        ui.csrf,
        publishable_key=pk,
        secret_key=sk,
        webhook_secret=whsec,
    )
    assert r.headers["location"] == "/ui/settings/stripe?done=saved"
    page = client.get(r.headers["location"]).text
    assert pk in page
    assert sk not in page
    assert whsec not in page
    assert "sk_test_••••••••" + sk[-4:] in page
    assert f"{rt.settings.public_url}/callbacks/v1.0/stripe/{ui.merchant.tenant_id}" in page
    assert all(f"<code>{t}</code>" in page for t in SUBSCRIBED_EVENT_TYPES)
    assert page.count("<code>whsec_") == 2  # the API-set one and the one just added

    # A live key under the test switch is refused, with the reason, and nothing changes.
    r = post(client, "/ui/settings/stripe", ui.csrf, publishable_key="pk_live_" + "a" * 20)
    assert r.status_code == 400
    assert "pk_test_" in r.text
    # Add a third secret, retire the first, refuse to retire the last one.
    new = "whsec_" + secrets.token_urlsafe(24)
    post(client, "/ui/settings/stripe/secrets", ui.csrf, webhook_secret=new)
    post(client, "/ui/settings/stripe/secrets/retire", ui.csrf, index="0")
    post(client, "/ui/settings/stripe/secrets/retire", ui.csrf, index="0")
    r = post(client, "/ui/settings/stripe/secrets/retire", ui.csrf, index="0")
    assert r.status_code == 400
    with rt.db.read() as s:
        row = s.execute(
            select(m.ProviderAccount).where(
                m.ProviderAccount.tenant_id == ui.merchant.tenant_id,
                m.ProviderAccount.environment == "test",
            )
        ).scalar_one()
        assert [rt.box.decrypt(x) for x in row.secrets["webhook_secrets"]] == [new]
        assert rt.box.decrypt(row.secrets["secret_key"]) == sk  # kept when left empty

    # The test event is signed with the remaining secret and goes through ingest.
    r = post(client, "/ui/settings/stripe/test-event", ui.csrf, event_type="charge.succeeded")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/ui/events/evt_")
    drain(rt)
    event_page = client.get(r.headers["location"]).text
    assert "charge.succeeded" in event_page
    assert "unmatched" in event_page


def test_test_event_about_an_order_shows_on_its_timeline(client, rt, ui):
    switch(client, ui.csrf, "test")
    order = create_order(client, ui.merchant)
    r = post(
        client,
        "/ui/settings/stripe/test-event",
        ui.csrf,
        event_type="payment_intent.succeeded",
        order_id=order["id"],
        **{"return": "order"},
    )
    assert r.headers["location"] == f"/ui/orders/{order['id']}?sent=payment_intent.succeeded"
    drain(rt)
    page = client.get(f"/ui/orders/{order['id']}").text
    assert 'status-paid">paid' in page
    assert "payment_intent.succeeded" in page
    assert "order.paid" in page
    # Not in live mode: live events only come from Stripe.
    switch(client, ui.csrf, "live")
    r = post(client, "/ui/settings/stripe/test-event", ui.csrf, event_type="charge.succeeded")
    assert r.status_code == 400


def test_orders_filters(client, rt, ui):
    switch(client, ui.csrf, "test")
    a = create_order(client, ui.merchant)
    b = create_order(client, ui.merchant)
    post(
        client,
        "/ui/settings/stripe/test-event",
        ui.csrf,
        event_type="payment_intent.succeeded",
        order_id=a["id"],
    )
    drain(rt)

    def ids(query: str) -> set[str]:
        text = client.get("/ui/orders" + query).text
        return {o for o in (a["id"], b["id"]) if o in text}

    assert ids("") == {a["id"], b["id"]}
    assert ids("?status=paid") == {a["id"]}
    assert ids("?status=open") == {b["id"]}
    assert ids(f"?reference={b['reference']}") == {b["id"]}
    assert ids("?customer=BUYER@example.com") == {a["id"], b["id"]}
    assert ids("?customer=nobody@example.com") == set()
    assert ids("?from=2000-01-01&to=2999-12-31") == {a["id"], b["id"]}
    assert ids("?to=2000-01-01") == set()
    assert client.get("/ui/orders?from=yesterday").status_code == 400


def test_orders_search_is_case_insensitive_contains_taken_literally(client, rt, ui):
    def order(reference: str, email: str, name: str) -> str:
        body = order_body(reference=reference, customer={"email": email, "name": name})
        headers = {**ui.merchant.auth("test"), "Idempotency-Key": secrets.token_hex(8)}
        r = client.post("/v1/orders", json=body, headers=headers)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    switch(client, ui.csrf, "test")
    c = order("Booking_2026%A", "Alice.Martin@Hotel.example", "Alice Martin")
    d = order("BOOKINGX2026", "bob@example.com", "Bob Durand")
    e = order("RÉSA-ÉTÉ", "elodie@example.fr", "Élodie Lefèvre")

    def ids(query: str) -> set[str]:
        r = client.get("/ui/orders", params=query)
        assert r.status_code == 200
        return {o for o in (c, d, e) if o in r.text}

    assert ids("reference=booking") == {c, d}
    assert ids("reference=g_2026") == {c}  # "_" is a character, not a wildcard
    assert ids("reference=%") == {c}  # and so is "%"
    assert ids("reference=2026%a") == {c}
    assert ids("customer=martin") == {c}  # the name
    assert ids("customer=HOTEL.example") == {c}  # the e-mail address
    assert ids("customer=DURAND") == {d}
    assert ids("customer=_") == set()
    assert ids("customer=o&reference=x2026") == {d}
    assert ids("email=bob@") == {d}  # the parameter's former name still works
    # Every letter folds, on SQLite as on PostgreSQL, not only ASCII ones.
    assert ids("customer=élodie") == {e}
    assert ids("customer=LEFÈVRE") == {e}
    assert ids("reference=résa-été") == {e}
    page = client.get("/ui/orders", params="customer=martin").text
    assert 'name="customer" value="martin"' in page
    assert 'type="email"' not in page


def test_a_failed_event_shows_its_error(client, rt, ui):
    switch(client, ui.csrf, "test")
    order = create_order(client, ui.merchant)
    event = simulate.build_event(
        "payment_intent.succeeded",
        livemode=False,
        metadata=order_meta(ui.merchant, order),
        payment_intent_id=order["payment"]["payment_intent"],
        amount=order["amount_total"],
    )
    event["data"]["object"]["status"] = "no_such_status"  # processing cannot map it
    assert post_event(client, ui.merchant, event).status_code == 200
    drain(rt)
    with rt.db.read() as s:
        row = s.execute(select(m.InboundEvent)).scalar_one()
    assert row.status == "retrying"
    assert row.error
    listing = client.get("/ui/events").text
    assert "no_such_status" in listing
    assert 'class="error-cell" lang="en"' in listing
    detail = client.get(f"/ui/events/{row.id}").text
    assert re.search(r'<pre class="error" lang="en">[^<]*no_such_status', detail)
    client.get("/ui/lang/fr")
    assert "nouvel essai prévu" in client.get(f"/ui/events/{row.id}").text


def test_events_log_pretty_prints_and_redacts(client, rt, ui):
    switch(client, ui.csrf, "test")
    order = create_order(client, ui.merchant)
    r = post(
        client,
        "/ui/settings/stripe/test-event",
        ui.csrf,
        event_type="payment_intent.succeeded",
        order_id=order["id"],
    )
    drain(rt)
    page = client.get(r.headers["location"]).text
    assert "processed" in page
    assert order["id"] in page
    # Indented JSON (compact JSON has no line starting with spaces), escaped.
    assert re.search(r"\n {6}&#34;object&#34;: &#34;payment_intent&#34;,\n", page)
    with rt.db.read() as s:
        raw = json.loads(s.execute(select(m.InboundEvent)).scalar_one().raw_body)
    assert raw["data"]["object"]["client_secret"] not in page
    listing = client.get("/ui/events?status=processed").text
    assert "payment_intent.succeeded" in listing
    assert "No events received yet" in client.get("/ui/events?status=failed").text


def test_users_invite_joins_the_same_tenant(client, rt, ui):
    r = post(client, "/ui/users", ui.csrf, email="Second@Example.com", tenant_id="ten_someone_else")
    assert r.status_code == 200
    link = re.search(r'id="invite-link" readonly value="[^"]*(/ui/invite/[^"]+)"', r.text)
    assert link
    assert "second@example.com" in client.get("/ui/users").text
    with rt.db.read() as s:
        user = s.execute(select(m.User).where(m.User.email == "second@example.com")).scalar_one()
    assert user.tenant_id == ui.merchant.tenant_id
    client.cookies.clear()
    form = client.get(link.group(1))
    r = client.post(
        link.group(1),
        data={
            "password": "long enough pw",
            "confirm": "long enough pw",
            "csrf_token": csrf_of(form.text),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Hôtel A" in client.get("/ui/").text


def test_dashboard_checklist_follows_setup(client, rt, ui):
    def done() -> set[str]:
        text = client.get("/ui/").text
        return {
            k
            for k in ("stripe_keys", "signing_secret", "first_event", "first_order", "teammate")
            if f'class="done" data-step="dash.check.{k}"' in text
        }

    assert done() == {"stripe_keys", "signing_secret"}  # live keys set through the API
    new_user(rt, ui.merchant.tenant_id)
    switch(client, ui.csrf, "test")
    create_order(client, ui.merchant)
    post(client, "/ui/settings/stripe/test-event", ui.csrf, event_type="charge.succeeded")
    assert done() == {"stripe_keys", "signing_secret", "first_event", "first_order", "teammate"}


class _FakeStripe(BaseHTTPRequestHandler):
    """Stripe's GET /v1/account for one good key (localstripe has no Account resource)."""

    good = ""

    def do_GET(self) -> None:
        ok = (
            self.path.startswith("/v1/account")
            and self.headers.get("Authorization") == f"Bearer {self.good}"
        )
        body = (
            {
                "id": "acct_1Fake",
                "object": "account",
                "country": "FR",
                "charges_enabled": True,
                "payouts_enabled": False,
                "business_profile": {"name": "Hôtel A SARL"},
            }
            if ok
            else {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}
        )
        data = json.dumps(body).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def fake_stripe(good_key: str):  # type: ignore[no-untyped-def]
    handler = type("H", (_FakeStripe,), {"good": good_key})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("good", [True, False])
def test_check_keys_asks_stripe(client, rt, ui, good):
    switch(client, ui.csrf, "test")
    sk = "sk_test_" + secrets.token_hex(12)
    post(
        client, "/ui/settings/stripe", ui.csrf, publishable_key="pk_test_" + "b" * 20, secret_key=sk
    )
    with fake_stripe(sk if good else "sk_test_other") as base:
        rt.stripe_factory = lambda key, account: StripeGateway(key, api_base=base, account=account)
        page = post(client, "/ui/settings/stripe/check", ui.csrf).text
    if good:
        assert "Stripe accepted the key" in page
        assert "acct_1Fake" in page
        assert "Hôtel A SARL" in page
    else:
        assert "Stripe check failed" in page
        assert "refused the secret key" in page
    assert sk not in page
