"""The extranet's security promises, over plain HTTP on both engines: a user of tenant A reaches
nothing of tenant B through any page or form; every form needs its CSRF token; no page shows a
secret in full; sign-in is throttled."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from tests.support.api import create_order, drain, new_merchant
from tests.support.extranet import csrf_of, login, new_user, switch

from caisse.extranet import auth
from caisse.extranet.routes import ROUTERS
from caisse.storage import models as m

NO_REDIRECT = {"follow_redirects": False}

# Every form of the extranet, with fields that would be valid for the signed-in tenant.
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
    "/ui/users": {"email": "new@example.com", "password": "long enough pw"},
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
    assert posts - {"/ui/login"} == set(POST_ROUTES)


def state(rt, tenant_id: str) -> tuple:  # type: ignore[no-untyped-def]
    """Everything of a tenant a form could change."""
    with rt.db.read() as s:
        accounts = sorted(
            (
                a.environment,
                a.config.get("publishable_key"),
                rt.box.decrypt(a.secrets["secret_key"]),
                tuple(rt.box.decrypt(x) for x in a.secrets["webhook_secrets"]),
            )
            for a in s.scalars(
                select(m.ProviderAccount).where(m.ProviderAccount.tenant_id == tenant_id)
            )
        )
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
    return accounts, users, events, orders


def test_tenant_a_cannot_see_or_change_tenant_b(client, rt):
    b = new_merchant(client, rt, name="Tenant B", envs=("test", "live"))
    b_order = create_order(client, b)
    from tests.support.api import order_meta, post_event

    from caisse.providers.stripe import simulate

    post_event(
        client,
        b,
        simulate.build_event(
            "payment_intent.succeeded",
            livemode=False,
            metadata=order_meta(b, b_order),
            payment_intent_id=b_order["payment"]["payment_intent"],
            amount=b_order["amount_total"],
        ),
    )
    drain(rt)
    with rt.db.read() as s:
        b_event = s.execute(
            select(m.InboundEvent.id).where(m.InboundEvent.tenant_id == b.tenant_id)
        ).scalar_one()
    b_user, _ = new_user(rt, b.tenant_id)
    before = state(rt, b.tenant_id)

    a = new_merchant(client, rt, name="Tenant A", envs=("test", "live"))
    email, password = new_user(rt, a.tenant_id)
    csrf = login(client, email, password)
    b_ids = (b.tenant_id, b_order["id"], b_event, b_user, b_order["reference"])
    for env in ("test", "live"):
        switch(client, csrf, env)
        # Pages with B's ids in the path: not found.
        for path in (f"/ui/orders/{b_order['id']}", f"/ui/events/{b_event}"):
            r = client.get(path)
            assert r.status_code == 404, path
            assert b_order["id"] not in r.text.replace(path, "")
        # Lists and searches with B's ids as filters: nothing of B.
        for path in (
            "/ui/",
            "/ui/orders",
            f"/ui/orders?reference={b_order['reference']}",
            "/ui/orders?email=buyer@example.com",
            "/ui/events",
            "/ui/events?type=payment_intent.succeeded",
            "/ui/users",
            "/ui/settings/stripe",
            f"/ui/orders?starting_after={b_order['id']}z",
        ):
            r = client.get(path)
            assert r.status_code == 200, path
            text = r.text.replace(f"reference={b_order['reference']}", "").replace(
                f'value="{b_order["reference"]}"', ""
            )
            for value in b_ids:
                assert value not in text, (path, value)
        # Every form, with B's ids slipped into every field a form might trust.
        for path, fields in POST_ROUTES.items():
            if path == "/ui/logout":
                continue
            data = {
                **fields,
                "csrf_token": csrf,
                "tenant_id": b.tenant_id,
                "order_id": b_order["id"],
                "event_id": b_event,
                "user_id": b_user,
            }
            r = client.post(path, data=data, **NO_REDIRECT)
            assert r.status_code < 500, (path, r.text)
        drain(rt)
    assert state(rt, b.tenant_id) == before


def test_forms_without_the_csrf_token_are_refused(client, rt):
    merchant = new_merchant(client, rt)
    email, password = new_user(rt, merchant.tenant_id)
    csrf = login(client, email, password)
    before = state(rt, merchant.tenant_id)
    for path, fields in POST_ROUTES.items():
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
    assert state(rt, merchant.tenant_id) == before
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
    with rt.db.read() as s:
        rows = s.scalars(select(m.InboundEvent)).all()
        event_ids = [r.id for r in rows]
        payload_secrets = [r.raw_body.decode() for r in rows]
    secrets_ = [
        sk,
        extra,
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
        ]
        for path in pages:
            text = client.get(path).text
            for secret in secrets_:
                assert secret not in text, (path, secret[:8])
        check = client.post("/ui/settings/stripe/check", data={"csrf_token": csrf}).text
        assert sk not in check


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


def test_secure_cookie_when_public_url_is_https(tmp_path):
    from starlette.responses import Response
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, "sqlite://", public_url="https://pay.example.com")
    response = Response()
    auth.set_cookie(response, settings, auth.SESSION_COOKIE, "v", max_age=60)
    cookie = response.headers["set-cookie"]
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie


def test_pages_carry_security_headers(client, rt):
    r = client.get("/ui/login")
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
