"""Tenants, API keys and Stripe credentials over HTTP, on both engines.

Secrets are checked where they rest (the raw table columns) and where they are shown (every
JSON answer), and tenants never see each other (404, never 403).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from sqlalchemy import text
from tests.support.api import Merchant, create_order, new_merchant, post_event

from caisse.crypto import hash_api_key
from caisse.providers.stripe.catalog import SUBSCRIBED_EVENT_TYPES
from caisse.runtime import Runtime


def operator(rt: Runtime) -> dict[str, str]:
    return {"Authorization": f"Bearer {rt.settings.admin_token.reveal()}"}


def stripe_body(env: str = "test", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "publishable_key": f"pk_{env}_" + secrets.token_hex(12),
        "secret_key": f"sk_{env}_" + secrets.token_hex(12),
        "webhook_secrets": ["whsec_" + secrets.token_urlsafe(24)],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def tenant(client, rt) -> Merchant:  # type: ignore[no-untyped-def]
    r = client.post("/v1/tenants", json={"name": "Hôtel A"}, headers=operator(rt))
    assert r.status_code == 201, r.text
    return Merchant(r.json()["id"], r.json()["api_keys"])


# -- tenants and API keys -------------------------------------------------------------------


def test_creating_a_tenant_needs_the_operator_token(client, rt) -> None:  # type: ignore[no-untyped-def]
    token = rt.settings.admin_token.reveal()
    for headers in (
        {},
        {"Authorization": "Bearer wrong-operator-token-000000"},
        {"Authorization": f"Bearer {token[:-1]}"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": "Bearer"},
    ):
        r = client.post("/v1/tenants", json={"name": "Intruder"}, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "authentication_failed"
        assert "Intruder" not in r.text
        assert token[:-1] not in r.text
    key = client.post("/v1/tenants", json={"name": "A"}, headers=operator(rt)).json()["api_keys"][
        "live"
    ]
    r = client.post("/v1/tenants", json={"name": "B"}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401  # a tenant key is not an operator token
    with rt.db.read() as s:
        assert s.execute(text("SELECT count(*) FROM tenants")).scalar_one() == 1


def test_create_tenant_answers_its_id_name_and_both_keys(client, rt) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/v1/tenants", json={"name": "  Café Lumière  "}, headers=operator(rt))
    assert r.status_code == 201
    body = r.json()
    assert body["id"].startswith("ten_")
    assert body["name"] == "Café Lumière"
    keys = body["api_keys"]
    assert set(keys) == {"test", "live"}
    assert keys["test"].startswith("ck_test_")
    assert keys["live"].startswith("ck_live_")


def test_invalid_tenant_bodies_are_400(client, rt) -> None:  # type: ignore[no-untyped-def]
    for body in ({}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": "A", "x": 1}):
        r = client.post("/v1/tenants", json=body, headers=operator(rt))
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "invalid_request"


def test_key_prefix_selects_the_environment(client, tenant) -> None:  # type: ignore[no-untyped-def]
    for env in ("test", "live"):
        r = client.get("/v1/tenant", headers=tenant.auth(env))
        assert r.status_code == 200
        assert r.json()["id"] == tenant.tenant_id
        assert r.json()["environment"] == env
        assert r.json()["livemode"] is (env == "live")
    # Stripe's form: the key as the Basic user name
    assert client.get("/v1/tenant", auth=(tenant.keys["live"], "")).json()["environment"] == "live"


def test_unknown_malformed_or_swapped_keys_are_401(client, tenant) -> None:  # type: ignore[no-untyped-def]
    forged = "ck_live_" + tenant.keys["test"].removeprefix("ck_test_")
    for key in (
        "",
        "ck_test_",
        "ck_test_notarealkey",
        "sk_test_abc",
        "ck_prod_abc",
        "ck_live_" + "a" * 300,
        forged,
        tenant.keys["test"] + "x",
    ):
        r = client.get("/v1/tenant", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401, key
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_api_keys_are_stored_hashed(client, rt, tenant) -> None:  # type: ignore[no-untyped-def]
    with rt.db.read() as s:
        rows = s.execute(text("SELECT * FROM api_keys")).mappings().all()
    assert len(rows) == 2
    dump = json.dumps([dict(r) for r in rows], default=str)
    for key in tenant.keys.values():
        assert key not in dump
        assert key.split("_", 2)[2][:16] not in dump  # not even a prefix of the random part
        assert hash_api_key(key) in dump


# -- Stripe credentials ---------------------------------------------------------------------


@pytest.mark.parametrize("env", ["test", "live"])
def test_put_stripe_answers_a_masked_view(client, rt, tenant, env) -> None:  # type: ignore[no-untyped-def]
    """Both environments, as the key's environment decides which prefixes are valid."""
    body = stripe_body(env, account_id="acct_1AbCdEfGhIjK")
    body["webhook_secrets"].append("whsec_" + secrets.token_urlsafe(24))
    r = client.put("/v1/providers/stripe", json=body, headers=tenant.auth(env))
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["environment"] == env
    assert view["livemode"] is (env == "live")
    assert view["publishable_key"] == body["publishable_key"]  # public by nature
    assert view["account_id"] == "acct_1AbCdEfGhIjK"
    assert view["secret_key"].startswith(f"sk_{env}_••")
    assert view["secret_key"].endswith(body["secret_key"][-4:])
    assert [w[:8] for w in view["webhook_secrets"]] == ["whsec_••", "whsec_••"]
    assert view["webhook_url"] == (
        f"{rt.settings.public_url}/callbacks/v1.0/stripe/{tenant.tenant_id}"
    )
    assert view["enabled_events"] == list(SUBSCRIBED_EVENT_TYPES)
    assert "payment_intent.succeeded" in view["enabled_events"]
    for secret in [body["secret_key"], *body["webhook_secrets"]]:
        assert secret not in r.text

    again = client.get("/v1/providers/stripe", headers=tenant.auth(env))
    assert again.status_code == 200
    assert again.json() == view
    for secret in [body["secret_key"], *body["webhook_secrets"]]:
        assert secret not in again.text


def test_settings_per_environment_need_a_tenant_key_and_put_replaces(client, rt, tenant) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/v1/providers/stripe").status_code == 401
    assert client.get("/v1/providers/stripe", headers=operator(rt)).status_code == 401
    assert client.get("/v1/providers/stripe", headers=tenant.auth("test")).status_code == 404
    five = stripe_body(webhook_secrets=["whsec_" + secrets.token_urlsafe(20) for _ in range(5)])
    r = client.put("/v1/providers/stripe", json=five, headers=tenant.auth("test"))
    assert r.status_code == 200
    assert len(r.json()["webhook_secrets"]) == 5
    assert client.get("/v1/providers/stripe", headers=tenant.auth("live")).status_code == 404

    first, second = stripe_body(), stripe_body()
    client.put("/v1/providers/stripe", json=first, headers=tenant.auth("test"))
    r = client.put("/v1/providers/stripe", json=second, headers=tenant.auth("test"))
    assert r.status_code == 200
    assert r.json()["publishable_key"] == second["publishable_key"]
    assert r.json()["secret_key"].endswith(second["secret_key"][-4:])
    assert len(r.json()["webhook_secrets"]) == 1


VALIDATION_CASES = [
    ("test", {"publishable_key": "pk_live_" + "a" * 24}, "publishable_key"),
    ("test", {"secret_key": "sk_live_" + "a" * 24}, "secret_key"),
    ("test", {"secret_key": "rk_live_" + "a" * 24}, "secret_key"),
    ("live", {"publishable_key": "pk_test_" + "a" * 24}, "publishable_key"),
    ("live", {"secret_key": "sk_test_" + "a" * 24}, "secret_key"),
    ("test", {"secret_key": "pk_test_" + "a" * 24}, "secret_key"),
    ("test", {"publishable_key": "sk_test_" + "a" * 24}, "publishable_key"),
    ("test", {"secret_key": "sk_test_abc"}, "secret_key"),  # too short
    ("test", {"secret_key": "sk_test_"}, "secret_key"),  # a bare prefix
    ("test", {"publishable_key": "pk_test_"}, "publishable_key"),
    ("test", {"secret_key": "sk_test_abc def ghi jkl"}, "secret_key"),
    ("test", {"publishable_key": "   "}, "publishable_key"),
    ("test", {"webhook_secrets": []}, "webhook_secrets"),
    ("test", {"webhook_secrets": ["sk_test_" + "a" * 24]}, "webhook_secrets[0]"),
    ("test", {"webhook_secrets": ["whsec_short"]}, "webhook_secrets[0]"),
    ("test", {"webhook_secrets": ["whsec_" + "a" * 24, "nope"]}, "webhook_secrets[1]"),
    (
        "test",
        {"webhook_secrets": ["whsec_" + "a" * 20 + str(i) for i in range(6)]},
        "webhook_secrets",
    ),
    ("test", {"account_id": "acc_123456789"}, "account_id"),
    ("test", {"account_id": "acct_12"}, "account_id"),
    ("test", {"account_id": "acct_abc/../x"}, "account_id"),
    ("test", {"publishable_key": None}, "publishable_key"),
    ("test", {"webhook_secrets": None}, "webhook_secrets"),
    ("test", {"livemode": True}, "livemode"),
    ("test", {"secret_key": 12345678}, "secret_key"),
]


def test_stripe_settings_validation(client, rt, tenant) -> None:  # type: ignore[no-untyped-def]
    """The whole matrix against one tenant: each refusal is 400 with ``param``, stores nothing
    and does not echo the refused value."""
    for env, change, param in VALIDATION_CASES:
        body = stripe_body(env)
        body.update(change)
        body = {k: v for k, v in body.items() if v is not None}
        r = client.put("/v1/providers/stripe", json=body, headers=tenant.auth(env))
        assert r.status_code == 400, (change, r.text)
        err = r.json()["error"]
        assert err["code"] == "invalid_request"
        assert err["param"] == param, change
        for value in change.values():
            if isinstance(value, str) and len(value) > 12:
                assert value not in r.text  # a refused secret is not echoed back
    with rt.db.read() as s:
        assert s.execute(text("SELECT count(*) FROM provider_accounts")).scalar_one() == 0


def test_restricted_keys_and_account_ids_are_accepted(client, tenant) -> None:  # type: ignore[no-untyped-def]
    for env in ("test", "live"):
        body = stripe_body(env, secret_key=f"rk_{env}_" + "R" * 24, account_id="acct_1PqRsTuVwX")
        r = client.put("/v1/providers/stripe", json=body, headers=tenant.auth(env))
        assert r.status_code == 200, r.text
        assert r.json()["secret_key"].startswith(f"rk_{env}_••")
        assert r.json()["account_id"] == "acct_1PqRsTuVwX"


def test_surrounding_whitespace_is_trimmed_and_duplicates_dropped(client, rt, tenant) -> None:  # type: ignore[no-untyped-def]
    body = stripe_body()
    whsec = body["webhook_secrets"][0]
    padded = {
        "publishable_key": body["publishable_key"] + "  ",
        "secret_key": " " + body["secret_key"] + "\n",
        "webhook_secrets": [whsec + " ", whsec],
    }
    r = client.put("/v1/providers/stripe", json=padded, headers=tenant.auth("test"))
    assert r.status_code == 200, r.text
    assert r.json()["publishable_key"] == body["publishable_key"]
    assert r.json()["secret_key"].endswith(body["secret_key"][-4:])
    assert len(r.json()["webhook_secrets"]) == 1
    # the trimmed secret is the one that verifies events
    merchant = Merchant(tenant.tenant_id, tenant.keys, {"test": whsec})
    from caisse.providers.stripe import simulate

    ev = simulate.build_event("payment_intent.succeeded", livemode=False)
    assert post_event(client, merchant, ev).status_code == 200


def test_secrets_are_encrypted_at_rest(client, rt, tenant) -> None:  # type: ignore[no-untyped-def]
    body = stripe_body(webhook_secrets=["whsec_" + secrets.token_urlsafe(24) for _ in range(2)])
    client.put("/v1/providers/stripe", json=body, headers=tenant.auth("test"))
    with rt.db.read() as s:
        raw = s.execute(text("SELECT secrets, config FROM provider_accounts")).one()
    stored_secrets = raw[0] if isinstance(raw[0], str) else json.dumps(raw[0])
    for secret in [body["secret_key"], *body["webhook_secrets"]]:
        assert secret not in stored_secrets
        assert secret[-12:] not in stored_secrets
        assert secret not in str(raw[1])
    assert "gAAAAA" in stored_secrets  # Fernet tokens


# -- isolation ------------------------------------------------------------------------------


def test_tenant_b_never_sees_tenant_a(client, rt) -> None:  # type: ignore[no-untyped-def]
    from caisse.providers.stripe import simulate

    a = new_merchant(client, rt, name="A")
    b = new_merchant(client, rt, name="B", envs=())
    order = create_order(client, a)
    ev = simulate.build_event("payment_intent.created", livemode=False)
    assert post_event(client, a, ev).status_code == 200
    events_a = client.get("/v1/events", headers=a.auth()).json()["data"]
    assert len(events_a) == 1

    assert client.get("/v1/providers/stripe", headers=b.auth()).status_code == 404
    for path in (
        f"/v1/orders/{order['id']}",
        f"/v1/orders/{order['id']}/timeline",
        f"/v1/events/{events_a[0]['id']}",
    ):
        r = client.get(path, headers=b.auth())
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"
    assert client.get("/v1/orders", headers=b.auth()).json()["data"] == []
    assert client.get("/v1/events", headers=b.auth()).json()["data"] == []
    assert (
        client.get("/v1/orders", headers=b.auth(), params={"starting_after": order["id"]}).json()[
            "data"
        ]
        == []
    )

    # B's PUT never touches A's row
    r = client.put("/v1/providers/stripe", json=stripe_body(), headers=b.auth())
    assert r.status_code == 200
    assert r.json()["webhook_url"].endswith(b.tenant_id)
    view_a = client.get("/v1/providers/stripe", headers=a.auth()).json()
    assert view_a["webhook_url"].endswith(a.tenant_id)
    assert view_a["publishable_key"] != r.json()["publishable_key"]

    # A's own live key does not see A's test order either
    assert client.get(f"/v1/orders/{order['id']}", headers=a.auth("live")).status_code == 404
