"""POST /callbacks/v1.0/stripe/{tenant}: every answer the contract names, on both engines."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select
from tests.support.api import create_order, drain, new_merchant, order_meta, post_event

from caisse.providers.stripe import simulate
from caisse.providers.stripe.signature import sign
from caisse.storage import models as m


def count(rt, model) -> int:  # type: ignore[no-untyped-def]
    with rt.db.read() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.fixture
def merchant(client, rt):  # type: ignore[no-untyped-def]
    return new_merchant(client, rt, envs=("test", "live"))


def event(livemode: bool = False, **kw):  # type: ignore[no-untyped-def]
    return simulate.build_event("payment_intent.succeeded", livemode=livemode, **kw)


def test_valid_event_is_stored_once_as_its_own_job_then_acknowledged(client, rt, merchant):
    ev = event()
    r = post_event(client, merchant, ev)
    assert r.status_code == 200
    assert r.json() == {"received": True}
    with rt.db.read() as s:
        row = s.execute(select(m.InboundEvent)).scalar_one()
    assert row.provider_event_id == ev["id"]
    assert row.environment == "test"
    assert row.status == "pending"
    assert row.raw_body == simulate.encode(ev)  # the raw bytes, as received
    assert row.run_at <= row.received_at  # due for processing at once
    assert row.locked_by is None


@pytest.mark.parametrize("created", [10**20, -5, 1.5])
def test_event_with_an_impossible_created_time_is_stored_without_one(client, rt, merchant, created):
    """No year fits such a time: stored with no provider time, not answered 503 for ever."""
    ev = event()
    ev["created"] = created
    r = post_event(client, merchant, ev)
    assert r.status_code == 200
    with rt.db.read() as s:
        row = s.execute(select(m.InboundEvent)).scalar_one()
    assert row.provider_event_id == ev["id"]
    assert row.provider_created_at is None


def test_duplicate_is_acknowledged_without_second_row_or_effect(client, rt, merchant):
    order = create_order(client, merchant)
    ev = event(
        payment_intent_id=order["payment"]["payment_intent"],
        amount=order["amount_total"],
        metadata=order_meta(merchant, order),
    )
    assert post_event(client, merchant, ev).status_code == 200
    drain(rt)
    for _ in range(3):
        assert post_event(client, merchant, ev).status_code == 200
    drain(rt)
    assert count(rt, m.InboundEvent) == 1
    with rt.db.read() as s:
        paid = s.execute(
            select(func.count()).select_from(m.Message).where(m.Message.type == "order.paid")
        ).scalar_one()
    assert paid == 1


def test_missing_signature_is_400_and_stores_nothing(client, rt, merchant):
    body = simulate.encode(event())
    r = client.post(f"/callbacks/v1.0/stripe/{merchant.tenant_id}", content=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "signature_invalid"
    assert count(rt, m.InboundEvent) == 0


@pytest.mark.parametrize(
    "case", ["tampered", "reserialised", "stale", "future", "v0_only", "wrong_secret", "garbage"]
)
def test_bad_signatures_are_400_with_a_generic_message(client, rt, merchant, case):
    ev = event()
    body = simulate.encode(ev)
    now = int(time.time())
    secret = merchant.whsec["test"]
    header = sign(body, [secret], timestamp=now)
    if case == "tampered":
        body = body.replace(b'"amount": 2000', b'"amount": 1')
    elif case == "reserialised":
        body = json.dumps(ev, separators=(",", ":")).encode()
    elif case == "stale":
        header = sign(body, [secret], timestamp=now - 301)
    elif case == "future":
        header = sign(body, [secret], timestamp=now + 3600)
    elif case == "v0_only":
        header = header.replace("v1=", "v0=")
    elif case == "wrong_secret":
        header = sign(body, ["whsec_someoneelse0000000000"], timestamp=now)
    elif case == "garbage":
        header = "t=abc,v1=" + "z" * 64
    r = client.post(
        f"/callbacks/v1.0/stripe/{merchant.tenant_id}",
        content=body,
        headers={"Stripe-Signature": header},
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "signature_invalid"
    # No detail about which check failed (research: Cellarion#451).
    for word in ("tolerance", "timestamp", "secret", "expired", "v0", "scheme"):
        assert word not in err["message"].lower()
    assert count(rt, m.InboundEvent) == 0


def test_another_tenants_secret_is_refused(client, rt, merchant):
    other = new_merchant(client, rt, name="Other")
    r = post_event(client, merchant, event(), secret=other.whsec["test"])
    assert r.status_code == 400


def test_livemode_must_match_the_environment_whose_secret_signed(client, rt, merchant):
    # A live event signed with the test secret (and the reverse) is refused.
    assert post_event(client, merchant, event(livemode=True), env="test").status_code == 400
    assert post_event(client, merchant, event(livemode=False), env="live").status_code == 400
    r = post_event(client, merchant, event(livemode=True), env="live")
    assert r.status_code == 200
    with rt.db.read() as s:
        assert s.execute(select(m.InboundEvent.environment)).scalar_one() == "live"


def test_unknown_tenant_is_404(client, merchant):
    body, headers = simulate.signed_delivery(event(), [merchant.whsec["test"]])
    r = client.post("/callbacks/v1.0/stripe/ten_doesnotexist", content=body, headers=headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"id": "x"}',
        b'{"object": "event", "id": "evt_1", "type": "x"}',
        b'{"object": "v2.core.event", "id": "evt_1", "type": "x"}',
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any parser's recursion limit
    ],
    ids=["text", "array", "no_object", "no_data", "thin", "deep"],
)
def test_signed_but_not_an_event_is_400(client, rt, merchant, body):
    header = sign(body, [merchant.whsec["test"]], timestamp=int(time.time()))
    r = client.post(
        f"/callbacks/v1.0/stripe/{merchant.tenant_id}",
        content=body,
        headers={"Stripe-Signature": header},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"
    assert count(rt, m.InboundEvent) == 0


def test_signed_invalid_utf8_is_400_not_500(client, rt, merchant):
    body = b'{"id": "evt_\xff\xfe"}'
    header = sign(body, [merchant.whsec["test"]], timestamp=int(time.time()))
    r = client.post(
        f"/callbacks/v1.0/stripe/{merchant.tenant_id}",
        content=body,
        headers={"Stripe-Signature": header},
    )
    assert r.status_code == 400


def test_body_over_one_mebibyte_is_413(client, rt, merchant):
    ev = event(overrides={"metadata": {"pad": "x" * (1024 * 1024)}})
    r = post_event(client, merchant, ev)
    assert r.status_code == 413
    assert count(rt, m.InboundEvent) == 0


def test_huge_signature_header_is_400(client, merchant):
    body = simulate.encode(event())
    header = "t=1," + ",".join(["v1=" + "a" * 64] * 2000)
    r = client.post(
        f"/callbacks/v1.0/stripe/{merchant.tenant_id}",
        content=body,
        headers={"Stripe-Signature": header},
    )
    assert r.status_code == 400


def test_other_methods_are_405(client, merchant):
    assert client.get(f"/callbacks/v1.0/stripe/{merchant.tenant_id}").status_code == 405
    assert client.put(f"/callbacks/v1.0/stripe/{merchant.tenant_id}").status_code == 405


def test_rotated_secrets_both_verify(client, rt, merchant):
    new_secret = "whsec_" + "n" * 32
    r = client.put(
        "/v1/providers/stripe",
        headers=merchant.auth("test"),
        json={
            "publishable_key": "pk_test_" + "a" * 20,
            "secret_key": "sk_test_" + "b" * 20,
            "webhook_secrets": [merchant.whsec["test"], new_secret],
        },
    )
    assert r.status_code == 200
    assert post_event(client, merchant, event(), secret=new_secret).status_code == 200
    assert post_event(client, merchant, event()).status_code == 200
    # Retiring the old secret takes effect at once.
    client.put(
        "/v1/providers/stripe",
        headers=merchant.auth("test"),
        json={
            "publishable_key": "pk_test_" + "a" * 20,
            "secret_key": "sk_test_" + "b" * 20,
            "webhook_secrets": [new_secret],
        },
    )
    assert post_event(client, merchant, event()).status_code == 400


def test_connect_event_for_another_account_is_refused(client, rt, merchant):
    client.put(
        "/v1/providers/stripe",
        headers=merchant.auth("test"),
        json={
            "publishable_key": "pk_test_" + "a" * 20,
            "secret_key": "sk_test_" + "b" * 20,
            "webhook_secrets": [merchant.whsec["test"]],
            "account_id": "acct_1Mine000000",
        },
    )
    assert post_event(client, merchant, event(account="acct_1Other00000")).status_code == 400
    assert post_event(client, merchant, event(account="acct_1Mine000000")).status_code == 200


def test_database_down_is_503_so_stripe_retries(tmp_path, localstripe_url):
    from starlette.testclient import TestClient
    from tests.conftest import make_settings

    from caisse.runtime import Runtime
    from caisse.web.app import create_app

    rt = Runtime.build(make_settings(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/nothing"))
    with TestClient(create_app(runtime=rt, run_worker=False)) as tc:
        body, headers = simulate.signed_delivery(event(), ["whsec_" + "x" * 32])
        r = tc.post("/callbacks/v1.0/stripe/ten_x", content=body, headers=headers)
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert "Traceback" not in r.text


def test_storage_failure_after_verification_is_503_and_nothing_acknowledged(client, rt, merchant):
    # Break the table the writer inserts into: the request must not be acknowledged.
    post_event(client, merchant, event())  # warm the secret cache
    with rt.db.write() as s:
        s.connection().exec_driver_sql("ALTER TABLE inbound_events RENAME TO inbound_gone")
    r = post_event(client, merchant, event())
    assert r.status_code == 503
    assert "Traceback" not in r.text


def test_one_secret_saved_in_both_environments_follows_livemode(client, rt, merchant):
    # A merchant pasting the same whsec_ under both keys: each event lands in the world its
    # livemode names, verified by that world's secrets, never refused nor swapped.
    shared = "whsec_" + "s" * 32
    for env in ("test", "live"):
        r = client.put(
            "/v1/providers/stripe",
            headers=merchant.auth(env),
            json={
                "publishable_key": f"pk_{env}_" + "a" * 20,
                "secret_key": f"sk_{env}_" + "b" * 20,
                "webhook_secrets": [shared],
            },
        )
        assert r.status_code == 200, r.text
    assert post_event(client, merchant, event(livemode=False), secret=shared).status_code == 200
    assert post_event(client, merchant, event(livemode=True), secret=shared).status_code == 200
    with rt.db.read() as s:
        envs = sorted(s.execute(select(m.InboundEvent.environment)).scalars())
    assert envs == ["live", "test"]


def test_event_naming_another_tenants_order_is_unmatched_and_changes_nothing(client, rt, merchant):
    victim = new_merchant(client, rt, name="Victim")
    order = create_order(client, victim)
    ev = event(
        payment_intent_id=order["payment"]["payment_intent"],
        amount=order["amount_total"],
        metadata=order_meta(victim, order),
    )
    # Correctly signed by the merchant, on the merchant's URL, but about the victim's order.
    assert post_event(client, merchant, ev).status_code == 200
    drain(rt)
    listed = client.get("/v1/events", headers=merchant.auth("test")).json()["data"]
    assert [e["status"] for e in listed] == ["unmatched"]
    after = client.get(f"/v1/orders/{order['id']}", headers=victim.auth("test")).json()
    assert after["status"] == "open"
    assert after["amount_paid"] == 0
    with rt.db.read() as s:
        assert s.execute(select(func.count()).select_from(m.Message)).scalar_one() == 0


def test_chunked_body_over_one_mebibyte_without_length_is_413(client, rt, merchant):
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * (64 * 1024)

    r = client.post(
        f"/callbacks/v1.0/stripe/{merchant.tenant_id}",
        content=chunks(),
        headers={"Stripe-Signature": "t=1,v1=" + "a" * 64},
    )
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413
    assert count(rt, m.InboundEvent) == 0
