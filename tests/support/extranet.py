"""Helpers to drive the extranet as a browser would, over plain HTTP (no JavaScript)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from caisse.providers.stripe import simulate
from caisse.runtime import Runtime
from caisse.tenants.users import create_user
from tests.support.api import Client, Merchant, create_order, drain, order_meta, post_event

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def new_user(
    rt: Runtime, tenant_id: str, email: str | None = None, password: str = "correct horse battery"
) -> tuple[str, str]:
    email = email or f"u{secrets.token_hex(4)}@example.com"
    with rt.db.write() as s:
        create_user(s, rt.clock, tenant_id, email, password)
    return email, password


def login(client: Client, email: str, password: str) -> str:
    """Sign in; returns the session's CSRF token (read from the dashboard)."""
    page = client.get("/ui/login")
    assert page.status_code == 200, page.text
    r = client.post(
        "/ui/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    home = client.get("/ui/")
    assert home.status_code == 200, home.text
    return csrf_of(home.text)


def switch(client: Client, csrf: str, environment: str) -> None:
    r = client.post(
        "/ui/mode",
        data={"environment": environment, "csrf_token": csrf, "next": "/ui/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def pay_order(client: Client, rt: Runtime, merchant: Merchant, env: str = "test") -> dict[str, Any]:
    """An order created through the API and paid by a signed Stripe event, jobs drained (the
    order is ``paid``, its partner messages sent, its invoice issued)."""
    order = create_order(client, merchant, env=env)
    event = simulate.build_event(
        "payment_intent.succeeded",
        livemode=env == "live",
        metadata=order_meta(merchant, order),
        payment_intent_id=order["payment"]["payment_intent"],
        amount=order["amount_total"],
    )
    r = post_event(client, merchant, event, env=env)
    assert r.status_code == 200, r.text
    drain(rt)
    return order
