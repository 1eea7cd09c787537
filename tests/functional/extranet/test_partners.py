"""Partner endpoints in the extranet, over plain HTTP on both engines, against real loopback
partners: add one (secret shown once), send a test webhook, read the delivery log, retry,
disable, replay, rotate, delete; staging and production kept apart."""

from __future__ import annotations

import html
import re
import secrets
from pathlib import Path

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook
from tests.conftest import make_settings
from tests.support import partners
from tests.support.api import drain
from tests.support.extranet import pay_order, switch

from caisse.config import Settings
from caisse.storage import models as m

NO_REDIRECT = {"follow_redirects": False}
API_KEY = "pk-partner-" + "k" * 32


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Partners listen on loopback here: allowed for these tests only."""
    return make_settings(tmp_path, db_url, allow_private_targets=True)


def post(client, path, csrf, data=None, **kw):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf, **(data or {})}, **NO_REDIRECT, **kw)


def revealed(text: str) -> str:
    found = re.search(r'id="new_secret" readonly value="([^"]+)"', text)
    assert found, "no secret shown"
    return html.unescape(found.group(1))


def add(client, csrf, url, **extra):  # type: ignore[no-untyped-def]
    data = {"url": url, "api_key": API_KEY, "nonce": secrets.token_hex(8), **extra}
    return post(client, "/ui/partners", csrf, data)


def endpoint_ids(rt, tenant_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    with rt.db.read() as s:
        return list(s.scalars(select(m.Endpoint.id).where(m.Endpoint.tenant_id == tenant_id)))


def test_add_shows_the_secret_once_and_it_signs(client, rt, ui):
    switch(client, ui.csrf, "test")
    with partners.ok(body=b'{"received": true, "note": "partner says hi"}') as partner:
        data = {
            "url": partner.url,
            "api_key": API_KEY,
            "nonce": "form-1",
            "description": "Compta staging",
            "event_types": ["order.paid", "invoice.issued"],
        }
        r = post(client, "/ui/partners", ui.csrf, data)
        assert r.status_code == 200, r.text
        secret = revealed(r.text)
        assert secret.startswith("whsec_")
        assert "shown this once" in r.text
        [endpoint_id] = endpoint_ids(rt, ui.merchant.tenant_id)
        # The same form sent again (a reload) shows the same endpoint, not a second one.
        again = post(client, "/ui/partners", ui.csrf, data)
        assert again.status_code == 200
        assert revealed(again.text) == secret
        assert endpoint_ids(rt, ui.merchant.tenant_id) == [endpoint_id]

        # Afterwards: masked everywhere, the API key only as a hint.
        for path in ("/ui/partners", f"/ui/partners/{endpoint_id}"):
            page = client.get(path)
            assert page.status_code == 200
            assert secret not in page.text
            assert API_KEY not in page.text
        detail = client.get(f"/ui/partners/{endpoint_id}").text
        assert "whsec_••••••••" + secret[-4:] in detail
        assert "Compta staging" in detail
        assert "order.paid" in detail
        assert "invoice.issued" in detail

        # Send a test webhook: status and timing shown, the partner's answer is not.
        r = post(client, f"/ui/partners/{endpoint_id}/test", ui.csrf)
        assert r.status_code == 200
        assert 'data-testid="test-status">HTTP 200<' in r.text
        assert re.search(r'data-testid="test-duration">\d+ ms<', r.text)
        assert "partner says hi" not in r.text
        [request] = partner.requests
        message = Webhook(secret).verify(request.body, request.header_dict)
        assert message["type"] == "endpoint.test"
        assert request.header("x-api-key") == API_KEY


def test_validation_errors_are_shown_and_nothing_is_saved(client, rt, ui):
    switch(client, ui.csrf, "test")
    cases = [
        ({"url": "https://partner.example/hook", "api_key": "short"}, "at least 32 characters"),
        ({"url": "ftp://partner.example/hook", "api_key": API_KEY}, "http or https"),
        (
            {"url": "http://10.0.0.1:9/hook", "api_key": API_KEY, "event_types": "order.bogus"},
            "unknown event type",
        ),
        ({"url": "https://partner.example/" + "a" * 2100, "api_key": API_KEY}, "url"),
    ]
    for data, message in cases:
        r = post(client, "/ui/partners", ui.csrf, {**data, "nonce": secrets.token_hex(6)})
        assert r.status_code == 400, data
        assert message in r.text, (data, r.text[-2000:])
        assert 'role="alert"' in r.text
        assert data["api_key"] not in r.text or data["api_key"] == "short"
    assert endpoint_ids(rt, ui.merchant.tenant_id) == []
    assert 'value="ftp://partner.example/hook"' not in client.get("/ui/partners").text


def test_live_takes_https_only_and_never_sees_staging(client, rt, ui):
    switch(client, ui.csrf, "test")
    with partners.ok() as partner:
        assert add(client, ui.csrf, partner.url).status_code == 200
        switch(client, ui.csrf, "live")
        r = add(client, ui.csrf, partner.url)
        assert r.status_code == 400
        assert "live endpoints must use https" in r.text
        page = client.get("/ui/partners").text
        assert partner.url not in page
        assert "No partner endpoint in this environment yet" in page
        [staging] = endpoint_ids(rt, ui.merchant.tenant_id)
        assert client.get(f"/ui/partners/{staging}").status_code == 404


def delivery_row(rt, endpoint_id: str) -> m.Delivery:  # type: ignore[no-untyped-def]
    with rt.db.read() as s:
        return s.execute(
            select(m.Delivery).where(m.Delivery.endpoint_id == endpoint_id)
        ).scalar_one()


def attempts(rt, delivery_id: str) -> int:  # type: ignore[no-untyped-def]
    with rt.db.read() as s:
        return int(
            s.execute(
                select(func.count())
                .select_from(m.DeliveryAttempt)
                .where(m.DeliveryAttempt.delivery_id == delivery_id)
            ).scalar_one()
        )


def test_delivery_log_retry_disable_replay(client, rt, ui):
    switch(client, ui.csrf, "test")
    with partners.fail_then_succeed(2, status=503) as partner:
        add(client, ui.csrf, partner.url, event_types="order.paid")
        [endpoint_id] = endpoint_ids(rt, ui.merchant.tenant_id)
        order = pay_order(client, rt, ui.merchant)
        delivery = delivery_row(rt, endpoint_id)
        assert delivery.status == "pending"  # 503, a retry is planned later

        log = client.get(f"/ui/partners/{endpoint_id}").text
        assert f'data-delivery="{delivery.id}"' in log
        assert ">503<" in log
        assert "try later" in log  # first bytes of the partner's answer
        assert " ms<" in log

        # Retry now: one more attempt (503 again).
        r = post(client, f"/ui/deliveries/{delivery.id}/retry", ui.csrf)
        assert r.headers["location"] == f"/ui/partners/{endpoint_id}?done=retried"
        drain(rt)
        assert attempts(rt, delivery.id) == 2

        # Disable: the pending delivery fails; retrying or replaying is refused meanwhile.
        r = post(client, f"/ui/partners/{endpoint_id}/status", ui.csrf, {"enabled": "0"})
        assert r.headers["location"] == f"/ui/partners/{endpoint_id}?done=disabled"
        assert delivery_row(rt, endpoint_id).status == "failed"
        r = post(client, f"/ui/deliveries/{delivery.id}/retry", ui.csrf)
        assert r.status_code == 409
        assert "enable it before retrying" in r.text
        r = post(
            client, f"/ui/partners/{endpoint_id}/replay", ui.csrf, {"since": "2000-01-01T00:00"}
        )
        assert r.status_code == 409
        r = post(client, f"/ui/partners/{endpoint_id}/replay", ui.csrf, {"since": "yesterday"})
        assert r.status_code == 400
        assert "YYYY-MM-DDTHH:MM" in r.text

        # Enable and replay the failures since a time: delivered.
        post(client, f"/ui/partners/{endpoint_id}/status", ui.csrf, {"enabled": "1"})
        r = post(
            client, f"/ui/partners/{endpoint_id}/replay", ui.csrf, {"since": "2000-01-01T00:00"}
        )
        assert r.status_code == 303
        assert "requeued=1" in r.headers["location"]
        assert "failed deliveries queued again: 1" in client.get(r.headers["location"]).text
        drain(rt)
        assert delivery_row(rt, endpoint_id).status == "delivered"
        assert len(partner.requests) == 3
        log = client.get(f"/ui/partners/{endpoint_id}?status=delivered").text
        assert "3 attempts" in log
        assert ">200<" in log
        assert (
            f'data-delivery="{delivery.id}"'
            not in client.get(f"/ui/partners/{endpoint_id}?status=failed").text
        )

        # The order's page shows where its messages went.
        page = client.get(f"/ui/orders/{order['id']}").text
        assert 'data-testid="order-deliveries"' in page
        assert f"/ui/partners/{endpoint_id}" in page


def test_rotate_then_delete(client, rt, ui):
    switch(client, ui.csrf, "test")
    with partners.ok() as partner:
        first = revealed(add(client, ui.csrf, partner.url).text)
        [endpoint_id] = endpoint_ids(rt, ui.merchant.tenant_id)
        r = post(client, f"/ui/partners/{endpoint_id}/rotate", ui.csrf)
        assert r.status_code == 200
        second = revealed(r.text)
        assert second != first
        assert second.startswith("whsec_")
        assert "keeps signing for 24 hours" in r.text
        page = client.get(f"/ui/partners/{endpoint_id}").text
        assert first not in page
        assert second not in page
        assert "Previous secret still signing until" in page
        # Both secrets sign during the grace period.
        post(client, f"/ui/partners/{endpoint_id}/test", ui.csrf)
        request = partner.requests[-1]
        Webhook(first).verify(request.body, request.header_dict)
        Webhook(second).verify(request.body, request.header_dict)

        r = post(client, f"/ui/partners/{endpoint_id}/delete", ui.csrf)
        assert r.headers["location"] == "/ui/partners?done=deleted"
        assert endpoint_ids(rt, ui.merchant.tenant_id) == []
        assert client.get(f"/ui/partners/{endpoint_id}").status_code == 404
        assert post(client, f"/ui/partners/{endpoint_id}/test", ui.csrf).status_code == 404


def test_failed_test_webhook_shows_the_status(client, rt, ui):
    switch(client, ui.csrf, "test")
    with partners.ok(status=500, body=b"stack trace of the partner") as partner:
        add(client, ui.csrf, partner.url)
        [endpoint_id] = endpoint_ids(rt, ui.merchant.tenant_id)
        r = post(client, f"/ui/partners/{endpoint_id}/test", ui.csrf)
    assert 'data-testid="test-status">HTTP 500<' in r.text
    assert "did not accept it" in r.text
    assert "stack trace of the partner" not in r.text


def test_dashboard_step_follows_endpoints(client, rt, ui):
    switch(client, ui.csrf, "test")
    todo = 'class="todo" data-step="dash.check.partner"'
    assert todo in client.get("/ui/").text
    with partners.ok() as partner:
        add(client, ui.csrf, partner.url)
    assert 'class="done" data-step="dash.check.partner"' in client.get("/ui/").text
    switch(client, ui.csrf, "live")
    assert todo in client.get("/ui/").text  # live is set up separately


def test_a_disabled_endpoint_leaves_a_notice_until_dismissed(client, rt, ui):
    switch(client, ui.csrf, "test")
    with partners.gone() as gone:  # 410: the partner says "stop", caisse disables the endpoint
        r = add(client, ui.csrf, gone.url)
        assert r.status_code == 200, r.text
        pay_order(client, rt, ui.merchant)
    with rt.db.read() as s:
        notice = s.execute(select(m.Notice)).scalar_one()
    assert notice.action == "endpoint.disabled"
    for path in ("/ui/", "/ui/orders", "/ui/partners"):  # on every page of that environment
        page = client.get(path).text
        assert 'data-testid="notice"' in page, path
        assert gone.url in page, path
    client.get("/ui/lang/fr")
    assert "désactivé par caisse" in client.get("/ui/").text
    switch(client, ui.csrf, "live")
    assert 'data-testid="notice"' not in client.get("/ui/").text  # test notices stay in test
    switch(client, ui.csrf, "test")

    dismiss = f"/ui/notices/{notice.id}/dismiss"
    assert client.post(dismiss, data={"next": "/ui/orders"}, **NO_REDIRECT).status_code == 403
    r = post(client, dismiss, ui.csrf, {"next": "/ui/orders"})
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/orders"
    assert 'data-testid="notice"' not in client.get("/ui/").text
    with rt.db.read() as s:
        assert s.get(m.Notice, notice.id).read_at is not None  # type: ignore[union-attr]
    listed = client.get("/v1/notices", headers=ui.merchant.auth("test")).json()["data"]
    assert [n["id"] for n in listed] == [notice.id]  # still in the API's history
    assert post(client, "/ui/notices/999999/dismiss", ui.csrf).status_code == 404
    assert post(client, "/ui/notices/x1/dismiss", ui.csrf).status_code == 404
