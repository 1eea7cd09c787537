"""The extranet's security promises, over plain HTTP on both engines: a user of tenant A reaches
nothing of tenant B through any page or form; every form needs its CSRF token; no page shows a
secret in full; sign-in is throttled."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.conftest import make_settings
from tests.support import partners
from tests.support.api import Merchant, create_order, drain, new_merchant
from tests.support.extranet import csrf_of, login, new_user, pay_order, switch

from caisse.config import Settings
from caisse.extranet import auth
from caisse.extranet.routes import ROUTERS
from caisse.storage import models as m

NO_REDIRECT = {"follow_redirects": False}


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Partner endpoints on loopback (the tenants' own receivers) are allowed here."""
    return make_settings(tmp_path, db_url, allow_private_targets=True)


# Every form of the extranet, with fields that would be valid for the signed-in tenant. Paths
# name the records they act on ({endpoint_id}, {delivery_id}, {sku}): the tests fill them with
# another tenant's ids (isolation) or the tenant's own (CSRF, so a refusal is not a 404).
POST_ROUTES = {
    "/ui/logout": {},
    "/ui/mode": {"environment": "test"},
    "/ui/settings/stripe": {
        "publishable_key": "pk_test_" + "c" * 20,
        "secret_key": "sk_test_" + "c" * 20,
    },
    "/ui/settings/stripe/secrets": {"webhook_secret": "whsec_" + "c" * 20},
    "/ui/settings/stripe/secrets/retire": {"index": "0"},
    "/ui/settings/stripe/check": {},
    "/ui/settings/stripe/test-event": {"event_type": "charge.succeeded"},
    "/ui/users": {"email": "new@example.com"},
    "/ui/users/{user_id}/status": {"active": "0"},
    "/ui/partners": {"url": "http://127.0.0.1:9/hook", "api_key": "k" * 40, "nonce": "n-1"},
    "/ui/partners/{endpoint_id}/status": {"enabled": "0"},
    "/ui/partners/{endpoint_id}/rotate": {},
    "/ui/partners/{endpoint_id}/test": {},
    "/ui/partners/{endpoint_id}/replay": {"since": "2000-01-01T00:00"},
    "/ui/deliveries/{delivery_id}/retry": {},
    "/ui/partners/{endpoint_id}/delete": {},
    "/ui/settings/xsolla": {
        "project_id": "4242",
        "api_key": "xsolla-key-" + "e" * 20,
        "webhook_secret": "xsolla-hook-" + "e" * 20,
        "firebase_project_id": "demo-evil-shop",
    },
    "/ui/catalog": {"sku": "evil.1", "name": "Evil", "price": "1.00", "currency": "EUR"},
    "/ui/catalog/{sku}": {"name": "Evil", "price": "2.00", "currency": "EUR"},
    "/ui/settings/seller": {"legal_name": "Evil SARL"},
    "/ui/notices/{notice_id}/dismiss": {"next": "/ui/"},
}

# Every page, with the ids it takes: pages of one record must answer 404 for another tenant's
# record; the others must show nothing of it. Public pages are left out on purpose: the login
# form and the language switch show no data, and an invitation page is reached only with its
# secret token (tested in test_users.py).
PUBLIC_GETS = {"/ui/login", "/ui/lang/{code}", "/ui/invite/{token}"}
GET_ROUTES = [
    "/ui/",
    "/ui/settings/stripe",
    "/ui/orders",
    "/ui/orders/{order_id}",
    "/ui/events",
    "/ui/events/{event_id}",
    "/ui/users",
    "/ui/invoices/{invoice_id}.pdf",
    "/ui/partners",
    "/ui/partners/{endpoint_id}",
    "/ui/settings/xsolla",
    "/ui/catalog",
    "/ui/catalog/{sku}",
    "/ui/settings/seller",
]


def equip(client: Any, rt: Any, merchant: Merchant, partner_url: str, sku: str) -> dict[str, str]:
    """A tenant with one of everything a form can act on, in test mode: an endpoint with a
    delivery (of a paid order, which also has an invoice), a SKU, Xsolla settings and seller
    details. Returns the ids."""
    auth_ = merchant.auth("test")
    r = client.post("/v1/endpoints", json={"url": partner_url, "api_key": "p" * 40}, headers=auth_)
    assert r.status_code == 201, r.text
    endpoint_id = r.json()["id"]
    r = client.put(
        f"/v1/catalog/items/{sku}",
        json={"name": "Gems", "price": {"amount": 499, "currency": "eur"}},
        headers=auth_,
    )
    assert r.status_code == 201, r.text
    r = client.put(
        "/v1/providers/xsolla",
        json={
            "project_id": "918273",
            "api_key": "xs-" + secrets.token_hex(16),
            "webhook_secret": "xh-" + secrets.token_hex(16),
            "firebase_project_id": "demo-tenant-shop",
        },
        headers=auth_,
    )
    assert r.status_code == 200, r.text
    r = client.patch("/v1/tenant", json={"legal": {"legal_name": "Legal " + sku}}, headers=auth_)
    assert r.status_code == 200, r.text
    with partners.gone() as gone:  # a partner answering 410: caisse disables it, with a notice
        r = client.post("/v1/endpoints", json={"url": gone.url}, headers=auth_)
        assert r.status_code == 201, r.text
        order = pay_order(client, rt, merchant)
    with rt.db.read() as s:
        notice_id = s.execute(
            select(m.Notice.id).where(m.Notice.tenant_id == merchant.tenant_id)
        ).scalar_one()
        delivery_id = s.execute(
            select(m.Delivery.id).where(
                m.Delivery.endpoint_id == endpoint_id, m.Delivery.event_type == "order.paid"
            )
        ).scalar_one()
        invoice_id = s.execute(
            select(m.Invoice.id).where(m.Invoice.order_id == order["id"])
        ).scalar_one()
        event_id = s.execute(
            select(m.InboundEvent.id).where(m.InboundEvent.tenant_id == merchant.tenant_id)
        ).scalar_one()
    user_email, _ = new_user(rt, merchant.tenant_id)
    with rt.db.read() as s:
        user_id = s.execute(select(m.User.id).where(m.User.email == user_email)).scalar_one()
    return {
        "notice_id": str(notice_id),
        "event_id": event_id,
        "user_id": user_id,
        "endpoint_id": endpoint_id,
        "delivery_id": delivery_id,
        "sku": sku,
        "order_id": order["id"],
        "invoice_id": invoice_id,
    }


def _routes() -> set[str]:
    return {
        f"{method} /ui{r.path}"
        for router in ROUTERS
        for r in router.routes
        for method in getattr(r, "methods", ())
    }


def test_every_form_is_covered_here():
    posts = {r.split(" ", 1)[1] for r in _routes() if r.startswith("POST ")}
    assert posts - {"/ui/login", "/ui/invite/{token}"} == set(POST_ROUTES)


def test_every_page_is_covered_here():
    gets = {r.split(" ", 1)[1] for r in _routes() if r.startswith("GET ")}
    assert gets - PUBLIC_GETS == set(GET_ROUTES)


def state(rt, tenant_id: str) -> tuple:  # type: ignore[no-untyped-def]
    """Everything of a tenant a form could change."""
    with rt.db.read() as s:
        accounts = sorted(
            (
                a.environment,
                a.provider,
                repr(sorted((a.config or {}).items())),
                repr(sorted((k, _plain(rt, v)) for k, v in (a.secrets or {}).items())),
            )
            for a in s.scalars(
                select(m.ProviderAccount).where(m.ProviderAccount.tenant_id == tenant_id)
            )
        )
        endpoints = sorted(
            (
                e.id,
                e.environment,
                e.url,
                e.status,
                tuple(rt.box.decrypt(x["secret"]) for x in e.secrets),
                rt.box.decrypt(e.api_key) if e.api_key else None,
            )
            for e in s.scalars(select(m.Endpoint).where(m.Endpoint.tenant_id == tenant_id))
        )
        deliveries = sorted(
            (d.id, d.status, d.attempts, d.next_attempt_at)
            for d in s.scalars(select(m.Delivery).where(m.Delivery.tenant_id == tenant_id))
        )
        items = sorted(
            (i.environment, i.sku, i.name, i.amount, i.status)
            for i in s.scalars(select(m.CatalogItem).where(m.CatalogItem.tenant_id == tenant_id))
        )
        tenant = s.get(m.Tenant, tenant_id)
        legal = (tenant.name, repr(sorted((tenant.legal or {}).items()))) if tenant else None
        users = sorted(s.scalars(select(m.User.email).where(m.User.tenant_id == tenant_id)))
        events = s.execute(
            select(func.count())
            .select_from(m.InboundEvent)
            .where(m.InboundEvent.tenant_id == tenant_id)
        ).scalar_one()
        orders = sorted(
            (o.id, o.status)
            for o in s.scalars(select(m.Order).where(m.Order.tenant_id == tenant_id))
        )
        notices = sorted(
            (n.id, n.read_at)
            for n in s.scalars(select(m.Notice).where(m.Notice.tenant_id == tenant_id))
        )
    return accounts, users, events, orders, endpoints, deliveries, items, legal, notices


def _plain(rt, value: Any) -> Any:  # type: ignore[no-untyped-def]
    if isinstance(value, list):
        return tuple(rt.box.decrypt(x) for x in value)
    return rt.box.decrypt(value) if value else value


def test_tenant_a_cannot_see_or_change_tenant_b(client, rt):
    with partners.ok() as b_partner:
        b = new_merchant(client, rt, name="Tenant B", envs=("test", "live"))
        b_ids = equip(client, rt, b, b_partner.url, "b-only-sku")
        b_sent = len(b_partner.requests)
        with rt.db.read() as s:
            b_event = s.execute(
                select(m.InboundEvent.id).where(m.InboundEvent.tenant_id == b.tenant_id)
            ).scalar_one()
            b_reference = s.execute(
                select(m.Order.reference).where(m.Order.id == b_ids["order_id"])
            ).scalar_one()
        b_user, _ = new_user(rt, b.tenant_id)
        before = state(rt, b.tenant_id)

        a = new_merchant(client, rt, name="Tenant A", envs=("test", "live"))
        email, password = new_user(rt, a.tenant_id)
        csrf = login(client, email, password)
        b_named = [v for k, v in b_ids.items() if k != "notice_id"]  # notice ids are small ints
        b_notice = f"/ui/notices/{b_ids['notice_id']}/dismiss"
        secrets_of_b = (b.tenant_id, b_event, b_user, b_reference, *b_named, b_notice, "918273")
        for env in ("test", "live"):
            switch(client, csrf, env)
            # Every page: B's records are not found; lists and searches show nothing of B.
            searches = [
                f"/ui/orders?reference={b_reference}",
                f"/ui/orders?reference={b_reference.lower()[2:]}",
                "/ui/orders?customer=BUYER",
                "/ui/orders?email=buyer@example.com",
                "/ui/events?type=payment_intent.succeeded",
                f"/ui/orders?starting_after={b_ids['order_id']}z",
                f"/ui/catalog?starting_after={b_ids['sku']}",
            ]
            for template in [*GET_ROUTES, *searches]:
                path = template.format(**b_ids)
                r = client.get(path)
                if "{" in template:
                    assert r.status_code == 404, path
                    assert b_ids["order_id"] not in r.text.replace(path, "")
                    continue
                assert r.status_code == 200, path
                # The search terms themselves come back in the form and the links.
                text = re.sub(r'(name="(reference|customer)"[^>]*value=")[^"]*', r"\1", r.text)
                text = re.sub(r"(reference|starting_after)=[^&\"]*", "", text)
                for value in secrets_of_b:
                    assert value not in text, (path, value)
                assert "Legal b-only-sku" not in text
            # Every form, on B's records, with B's ids slipped into every field a form might trust.
            for template, fields in POST_ROUTES.items():
                if template == "/ui/logout":
                    continue
                data = {
                    **fields,
                    "csrf_token": csrf,
                    "tenant_id": b.tenant_id,
                    "order_id": b_ids["order_id"],
                    "event_id": b_event,
                    "user_id": b_user,
                    "endpoint_id": b_ids["endpoint_id"],
                    "delivery_id": b_ids["delivery_id"],
                    "sku": b_ids["sku"] if "{sku}" in template else fields.get("sku", ""),
                }
                path = template.format(**b_ids)
                r = client.post(path, data=data, **NO_REDIRECT)
                assert r.status_code < 500, (path, r.text)
                if "{" in template:
                    assert r.status_code == 404, path
            drain(rt)
        assert state(rt, b.tenant_id) == before
        assert len(b_partner.requests) == b_sent  # no test webhook, retry or replay reached B


def test_forms_without_the_csrf_token_are_refused(client, rt):
    with partners.ok() as partner:
        merchant = new_merchant(client, rt)
        own = equip(client, rt, merchant, partner.url, "own-sku")
        sent = len(partner.requests)
        email, password = new_user(rt, merchant.tenant_id)
        csrf = login(client, email, password)
        switch(client, csrf, "test")
        before = state(rt, merchant.tenant_id)
        for template, fields in POST_ROUTES.items():
            path = template.format(**own)
            for bad in (
                {},
                {"csrf_token": ""},
                {"csrf_token": ("y" if csrf[0] == "x" else "x") + csrf[1:]},
            ):
                r = client.post(path, data={**fields, **bad}, **NO_REDIRECT)
                assert r.status_code == 403, (path, bad)
                assert "expired or did not come from this site" in r.text
            r = client.post(
                path,
                data={**fields, "csrf_token": csrf},
                headers={"Origin": "https://evil.example"},
                **NO_REDIRECT,
            )
            assert r.status_code == 403, path
        drain(rt)
        assert state(rt, merchant.tenant_id) == before
        assert len(partner.requests) == sent
        assert client.get("/ui/", **NO_REDIRECT).status_code == 200  # still signed in


def test_login_form_needs_its_csrf_token(client, rt):
    merchant = new_merchant(client, rt)
    email, password = new_user(rt, merchant.tenant_id)
    client.get("/ui/login")
    r = client.post("/ui/login", data={"email": email, "password": password}, **NO_REDIRECT)
    assert r.status_code == 403
    client.cookies.clear()  # a token from another browser (another nonce) does not fit either
    token = csrf_of(client.get("/ui/login").text)
    client.cookies.clear()
    client.get("/ui/login")
    r = client.post(
        "/ui/login", data={"email": email, "password": password, "csrf_token": token}, **NO_REDIRECT
    )
    assert r.status_code == 403


def test_no_page_shows_a_secret_in_full(client, rt):
    merchant = new_merchant(client, rt, envs=("test", "live"))
    email, password = new_user(rt, merchant.tenant_id)
    csrf = login(client, email, password)
    sk = "sk_test_" + secrets.token_hex(16)
    extra = "whsec_" + secrets.token_urlsafe(24)
    switch(client, csrf, "test")
    client.post(
        "/ui/settings/stripe",
        data={
            "csrf_token": csrf,
            "publishable_key": "pk_test_" + "d" * 20,
            "secret_key": sk,
            "webhook_secret": extra,
        },
        **NO_REDIRECT,
    )
    order = create_order(client, merchant)
    client.post(
        "/ui/settings/stripe/test-event",
        data={
            "csrf_token": csrf,
            "event_type": "payment_intent.succeeded",
            "order_id": order["id"],
        },
        **NO_REDIRECT,
    )
    drain(rt)
    # A partner endpoint (its secret shown once, then rotated), Xsolla keys, a catalogue item.
    partner_key = "pk-" + secrets.token_hex(20)
    r = client.post(
        "/ui/partners",
        data={"csrf_token": csrf, "url": "http://127.0.0.1:9/hook", "api_key": partner_key},
    )
    assert r.status_code == 200, r.text
    with rt.db.read() as s:
        endpoint = s.scalars(select(m.Endpoint)).one()
        endpoint_secrets = [rt.box.decrypt(endpoint.secrets[0]["secret"])]
    r = client.post(f"/ui/partners/{endpoint.id}/rotate", data={"csrf_token": csrf})
    assert r.status_code == 200
    with rt.db.read() as s:
        rotated = s.get(m.Endpoint, endpoint.id)
        assert rotated is not None
        endpoint_secrets.append(rt.box.decrypt(rotated.secrets[0]["secret"]))
    xsolla_key, xsolla_hook = "xk-" + secrets.token_hex(16), "xh-" + secrets.token_hex(16)
    r = client.post(
        "/ui/settings/xsolla",
        data={
            "csrf_token": csrf,
            "project_id": "1234",
            "api_key": xsolla_key,
            "webhook_secret": xsolla_hook,
            "firebase_project_id": "demo-secret-shop",
        },
        **NO_REDIRECT,
    )
    assert r.status_code == 303, r.text
    with rt.db.read() as s:
        rows = s.scalars(select(m.InboundEvent)).all()
        event_ids = [r.id for r in rows]
        payload_secrets = [r.raw_body.decode() for r in rows]
    secrets_ = [
        sk,
        extra,
        partner_key,
        *endpoint_secrets,
        xsolla_key,
        xsolla_hook,
        *merchant.whsec.values(),
        *merchant.keys.values(),
        password,
        order["payment"]["client_secret"],
        rt.settings.admin_token.reveal(),
        rt.settings.master_keys[0].reveal(),
    ]
    import json as _json

    for body in payload_secrets:
        secrets_.append(_json.loads(body)["data"]["object"]["client_secret"])
    for env in ("test", "live"):
        switch(client, csrf, env)
        pages = [
            "/ui/",
            "/ui/settings/stripe",
            "/ui/orders",
            f"/ui/orders/{order['id']}",
            "/ui/events",
            *[f"/ui/events/{i}" for i in event_ids],
            "/ui/users",
            "/ui/login",
            "/ui/partners",
            f"/ui/partners/{endpoint.id}",
            "/ui/settings/xsolla",
            "/ui/catalog",
            "/ui/settings/seller",
        ]
        for path in pages:
            text = client.get(path).text
            for secret in secrets_:
                assert secret not in text, (path, secret[:8])
        check = client.post("/ui/settings/stripe/check", data={"csrf_token": csrf}).text
        assert sk not in check
        if env == "test":  # the answers of the endpoint's forms (other than the reveal) too
            for action in ("test", "replay"):
                text = client.post(
                    f"/ui/partners/{endpoint.id}/{action}",
                    data={"csrf_token": csrf, "since": "2000-01-01T00:00"},
                ).text
                for secret in secrets_:
                    assert secret not in text, (action, secret[:8])


def test_login_is_throttled_per_email(client, rt):
    merchant = new_merchant(client, rt)
    email, password = new_user(rt, merchant.tenant_id)
    other, other_pw = new_user(rt, merchant.tenant_id)

    def attempt(who: str, pw: str) -> int:
        page = client.get("/ui/login")
        return int(
            client.post(
                "/ui/login",
                data={"email": who, "password": pw, "csrf_token": csrf_of(page.text)},
                **NO_REDIRECT,
            ).status_code
        )

    for _ in range(auth.MAX_FAILURES_PER_EMAIL):
        assert attempt(email, "not the password") == 401
    assert attempt(email, password) == 429  # even the right password waits
    assert attempt(other, other_pw) == 303  # another account is not locked out
    with rt.db.read() as s:
        assert s.execute(select(func.count()).select_from(m.LoginFailure)).scalar_one() == 5


def test_pages_carry_security_headers(client, rt):
    r = client.get("/ui/login")
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
