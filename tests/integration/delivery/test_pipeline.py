"""Partner webhooks end to end inside caisse: API → message → fan-out → ``deliver`` job → real
loopback partners; a FrozenClock drives the retry schedule; both engines."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from tests.conftest import make_settings
from tests.support import partners
from tests.support.api import Merchant, drain, new_merchant
from tests.support.deliveries import deliveries, record, register

from caisse import __version__
from caisse.clock import FrozenClock
from caisse.config import Settings
from caisse.delivery import worker as delivery_worker
from caisse.delivery.options import DeliveryOptions
from caisse.delivery.retry import RetryPolicy
from caisse.runtime import Runtime
from caisse.storage import jobs as jobstore
from caisse.storage import models as m

API_KEY = "k" * 16 + secrets.token_hex(16)


@pytest.fixture
def merchant(client: Any, rt: Runtime) -> Merchant:
    return new_merchant(client, rt, envs=("test", "live"))


def test_endpoint_api_contract_and_masking(client: Any, rt: Runtime, merchant: Merchant) -> None:
    body = {"url": "https://partner.example.com/hook", "api_key": API_KEY}
    key = {"Idempotency-Key": "ep-1"}
    r = client.post("/v1/endpoints", json=body, headers={**merchant.auth(), **key})
    assert r.status_code == 201
    created = r.json()
    assert created["secret"].startswith("whsec_")
    assert created["url"] == body["url"]
    again = client.post("/v1/endpoints", json=body, headers={**merchant.auth(), **key})
    assert again.json()["id"] == created["id"]
    shown = client.get(f"/v1/endpoints/{created['id']}", headers=merchant.auth()).json()
    assert created["secret"] not in str(shown)
    assert API_KEY not in str(shown)
    assert "•" in shown["secret"]
    assert "•" in shown["api_key"]
    listed = client.get("/v1/endpoints", headers=merchant.auth()).json()["data"]
    assert [e["id"] for e in listed] == [created["id"]]
    # the live key sees none of the test endpoints
    assert client.get("/v1/endpoints", headers=merchant.auth("live")).json()["data"] == []
    with rt.db.read() as s:
        row = s.get(m.Endpoint, created["id"])
        assert row is not None
        assert API_KEY not in str(row.api_key)
        assert created["secret"] not in str(row.secrets)

    bad = [
        ({"url": "http://partner.example.com/hook"}, "live", "url"),
        ({"url": "https://partner.example.com/h", "api_key": "short"}, "test", "api_key"),
        ({"url": "https://partner.example.com/h", "event_types": ["nope"]}, "test", "event_types"),
        ({"url": "ftp://partner.example.com/h"}, "test", "url"),
    ]
    for payload, env, param in bad:
        r = client.post("/v1/endpoints", json=payload, headers=merchant.auth(env))
        assert r.status_code == 400, payload
        assert r.json()["error"]["param"] == param

    r = client.patch(
        f"/v1/endpoints/{created['id']}",
        json={"enabled": False, "description": "old"},
        headers=merchant.auth(),
    )
    assert r.json()["status"] == "disabled"
    assert r.json()["description"] == "old"
    r = client.delete(f"/v1/endpoints/{created['id']}", headers=merchant.auth())
    assert r.json()["deleted"] is True
    assert client.get(f"/v1/endpoints/{created['id']}", headers=merchant.auth()).status_code == 404


def test_signed_delivery_to_the_environment_s_endpoints_only(
    client: Any, rt: Runtime, merchant: Merchant
) -> None:
    with partners.ok() as partner:
        ep = register(client, merchant, partner.url, api_key=API_KEY)
        live = register(client, merchant, "https://partner.example.com/prod", env="live")
        filtered = register(client, merchant, partner.url, event_types=["order.refunded"])
        msg_id = record(rt, merchant)
        drain(rt)
        assert len(partner.requests) == 1
        req = partner.requests[0]
    headers = req.header_dict
    payload = Webhook(ep["secret"]).verify(req.body, headers)
    assert payload["type"] == "order.paid"
    assert set(payload) == {"type", "timestamp", "data"}
    assert headers["webhook-id"] == msg_id
    assert headers["x-api-key"] == API_KEY
    assert headers["user-agent"] == f"caisse/{__version__}"
    [d] = deliveries(client, merchant, ep["id"])
    assert d["status"] == "delivered"
    assert d["attempt_count"] == 1
    [a] = d["attempts"]
    assert a["outcome"] == "succeeded"
    assert a["status_code"] == 200
    assert a["response"] == '{"received": true}'
    assert a["webhook_id"] == msg_id
    assert deliveries(client, merchant, filtered["id"]) == []
    assert (
        client.get(f"/v1/endpoints/{live['id']}/deliveries", headers=merchant.auth("live")).json()[
            "data"
        ]
        == []
    )


def test_retry_schedule_same_id_fresh_signatures(
    client: Any, rt: Runtime, clock: FrozenClock, merchant: Merchant
) -> None:
    with partners.fail_then_succeed(2) as partner:
        ep = register(client, merchant, partner.url)
        record(rt, merchant)
        start = clock.now()
        drain(rt)
        [d] = deliveries(client, merchant, ep["id"])
        assert d["status"] == "pending"
        assert d["last_status_code"] == 500
        wait = d["next_attempt"] - int(start.timestamp())
        assert 4 <= wait <= 6  # 5 s ± 20 %
        assert drain(rt) == 0  # not due yet
        clock.advance(6)
        drain(rt)
        [d] = deliveries(client, merchant, ep["id"])
        wait = d["next_attempt"] - int(clock.now().timestamp())
        assert 240 <= wait <= 360  # 5 min ± 20 %
        clock.advance(361)
        drain(rt)
        reqs = list(partner.requests)
    [d] = deliveries(client, merchant, ep["id"])
    assert d["status"] == "delivered"
    assert [a["outcome"] for a in d["attempts"]] == ["failed", "failed", "succeeded"]
    assert len(reqs) == 3
    assert len({r.header("webhook-id") for r in reqs}) == 1
    assert len({r.header("webhook-timestamp") for r in reqs}) == 3
    assert len({r.header("webhook-signature") for r in reqs}) == 3
    wh = Webhook(ep["secret"])
    for r in reqs:  # what standardwebhooks would sign for that id, timestamp and body
        stamp = dt.datetime.fromtimestamp(int(r.header("webhook-timestamp") or 0), dt.UTC)
        assert r.header("webhook-signature") == wh.sign(
            r.header("webhook-id") or "", stamp, r.body.decode()
        )


def disabled_total(client: Any, reason: str) -> float:
    """``caisse_endpoints_disabled_total{reason=...}`` as /metrics shows it."""
    text = client.get("/metrics").text
    prefix = f'caisse_endpoints_disabled_total{{reason="{reason}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_retry_after_and_410(
    client: Any, rt: Runtime, clock: FrozenClock, merchant: Merchant
) -> None:
    before = disabled_total(client, "gone")
    with partners.throttled("600") as slow, partners.gone() as gone:
        ep_slow = register(client, merchant, slow.url)
        ep_gone = register(client, merchant, gone.url)
        slow.expect_signed_by(ep_slow["secret"])
        gone.expect_signed_by(ep_gone["secret"])
        record(rt, merchant)
        drain(rt)
    assert disabled_total(client, "gone") == before + 1
    [d] = deliveries(client, merchant, ep_slow["id"])
    assert d["status"] == "pending"
    assert d["attempts"][0]["retry_after"] == "600"
    assert d["next_attempt"] - int(clock.now().timestamp()) == 600
    [d] = deliveries(client, merchant, ep_gone["id"])
    assert d["status"] == "failed"
    assert d["last_status_code"] == 410
    shown = client.get(f"/v1/endpoints/{ep_gone['id']}", headers=merchant.auth()).json()
    assert shown["status"] == "disabled"
    assert "410" in shown["disabled_reason"]
    notices = client.get("/v1/notices", headers=merchant.auth()).json()["data"]
    assert [n["subject_id"] for n in notices] == [ep_gone["id"]]
    assert notices[0]["data"]["code"] == "gone"
    # a later message reaches the throttled partner only
    record(rt, merchant)
    with rt.db.read() as s:
        count = s.scalars(select(m.Delivery).where(m.Delivery.endpoint_id == ep_gone["id"])).all()
    assert len(count) == 1


def test_failing_for_five_days_disables_and_notifies(
    client: Any, rt: Runtime, clock: FrozenClock, merchant: Merchant
) -> None:
    before = disabled_total(client, "failing")
    with partners.ok(status=500) as partner:
        ep = register(client, merchant, partner.url)
        partner.expect_signed_by(ep["secret"])
        for _day in range(6):
            record(rt, merchant)
            drain(rt)
            clock.advance(86_400 + 1)
        drain(rt)
    shown = client.get(f"/v1/endpoints/{ep['id']}", headers=merchant.auth()).json()
    assert shown["status"] == "disabled"
    assert "5 days" in shown["disabled_reason"]
    notices = client.get("/v1/notices", headers=merchant.auth()).json()["data"]
    assert notices
    assert notices[0]["action"] == "endpoint.disabled"
    assert notices[0]["data"]["code"] == "failing"
    assert disabled_total(client, "failing") == before + 1
    undelivered = client.get("/v1/messages?undelivered=true", headers=merchant.auth()).json()
    assert len(undelivered["data"]) == 6


def test_two_lone_failures_five_days_apart_do_not_disable(
    client: Any, rt: Runtime, clock: FrozenClock, merchant: Merchant
) -> None:
    """A quiet endpoint failing once, then once more 5 days later, has failed twice, not
    "for 5 days": disabling needs 5 failed attempts in the window too."""
    rt.delivery = DeliveryOptions(policy=RetryPolicy(schedule=(dt.timedelta(0),)))
    with partners.ok(status=500) as partner:
        ep = register(client, merchant, partner.url)
        record(rt, merchant)
        drain(rt)
        clock.advance(5 * 86_400 + 1)
        record(rt, merchant)
        drain(rt)
        assert len(partner.requests) == 2
    shown = client.get(f"/v1/endpoints/{ep['id']}", headers=merchant.auth()).json()
    assert shown["status"] == "enabled"
    assert shown["failing_since"] is not None


def test_redirect_is_a_failure_and_the_api_key_stays_home(
    client: Any, rt: Runtime, merchant: Merchant
) -> None:
    with partners.ok() as target, partners.redirect(target.url) as hop:
        ep = register(client, merchant, hop.url, api_key=API_KEY)
        hop.expect_signed_by(ep["secret"])
        record(rt, merchant)
        drain(rt)
        assert target.requests == []
    [d] = deliveries(client, merchant, ep["id"])
    assert d["status"] == "pending"
    assert d["attempts"][0]["location"] == target.url


def test_rotation_signs_with_both_secrets_during_grace(
    client: Any, rt: Runtime, clock: FrozenClock, merchant: Merchant
) -> None:
    with partners.ok() as partner:
        ep = register(client, merchant, partner.url)
        r = client.post(f"/v1/endpoints/{ep['id']}/rotate_secret", headers=merchant.auth())
        new = r.json()["secret"]
        assert new != ep["secret"]
        assert len(r.json()["previous_secrets_expire"]) == 1
        record(rt, merchant)
        drain(rt)
        clock.advance(24 * 3600 + 1)
        record(rt, merchant)
        drain(rt)
        first, second = partner.requests
    assert len(first.header("webhook-signature").split()) == 2  # type: ignore[union-attr]
    for secret in (new, ep["secret"]):
        assert Webhook(secret).verify(first.body, first.header_dict)["type"] == "order.paid"
    assert len(second.header("webhook-signature").split()) == 1  # type: ignore[union-attr]
    stamp = dt.datetime.fromtimestamp(int(second.header("webhook-timestamp") or 0), dt.UTC)
    assert second.header("webhook-signature") == Webhook(new).sign(
        second.header("webhook-id") or "", stamp, second.body.decode()
    )


def test_manual_retry_replay_and_undelivered(
    client: Any, rt: Runtime, clock: FrozenClock, merchant: Merchant
) -> None:
    with partners.gone() as gone:
        ep = register(client, merchant, gone.url)
        record(rt, merchant)
        drain(rt)
    [d] = deliveries(client, merchant, ep["id"])
    assert d["status"] == "failed"
    r = client.post(f"/v1/deliveries/{d['id']}/retry", headers=merchant.auth())
    assert r.status_code == 409  # endpoint disabled by the 410
    missed = record(rt, merchant)  # missed while disabled: no delivery, still undelivered
    undelivered = client.get("/v1/messages?undelivered=true", headers=merchant.auth()).json()
    assert len(undelivered["data"]) == 2
    for_ep = client.get(
        f"/v1/messages?undelivered=true&endpoint_id={ep['id']}", headers=merchant.auth()
    ).json()["data"]
    assert len(for_ep) == 2
    assert missed in [msg["id"] for msg in for_ep]
    assert for_ep[0]["deliveries"] == []  # newest first: the missed one has no delivery
    with partners.ok() as partner:
        client.patch(
            f"/v1/endpoints/{ep['id']}", json={"url": partner.url, "enabled": True},
            headers=merchant.auth(),
        )  # fmt: skip
        since = int(clock.now().timestamp()) - 60
        r = client.post(
            f"/v1/endpoints/{ep['id']}/replay", json={"since": since}, headers=merchant.auth()
        )
        assert r.json()["requeued"] == 1
        assert r.json()["missed_messages"] == 1
        drain(rt)
        assert len(partner.requests) == 2
        r = client.post(f"/v1/deliveries/{d['id']}/retry", headers=merchant.auth())
        assert r.status_code == 200
        assert r.json()["status"] == "pending"
        drain(rt)
        assert len(partner.requests) == 3
    undelivered = client.get("/v1/messages?undelivered=true", headers=merchant.auth()).json()
    assert undelivered["data"] == []
    sent = client.get(f"/v1/messages?endpoint_id={ep['id']}", headers=merchant.auth()).json()
    assert len(sent["data"]) == 2
    [_, first] = deliveries(client, merchant, ep["id"])
    assert [a["trigger"] for a in first["attempts"]] == ["schedule", "manual", "manual"]


def test_test_action_reports_status_and_timing_only(
    client: Any, rt: Runtime, merchant: Merchant
) -> None:
    with partners.ok(status=418, body=b'{"secret": "internal"}') as partner:
        ep = register(client, merchant, partner.url, api_key=API_KEY)
        r = client.post(f"/v1/endpoints/{ep['id']}/test", headers=merchant.auth())
        [req] = partner.requests
    assert r.status_code == 200
    assert r.json()["status_code"] == 418
    assert r.json()["ok"] is False
    assert "internal" not in r.text
    assert isinstance(r.json()["duration_ms"], int)
    assert Webhook(ep["secret"]).verify(req.body, req.header_dict)["type"] == "endpoint.test"
    assert req.header("x-api-key") == API_KEY


def test_replay_never_sends_what_predates_the_endpoint(
    client: Any, rt: Runtime, clock: FrozenClock, merchant: Merchant
) -> None:
    old = record(rt, merchant)  # before any endpoint exists
    clock.advance(3600)
    with partners.ok() as partner:
        ep = register(client, merchant, partner.url)
        partner.expect_signed_by(ep["secret"])
        client.patch(f"/v1/endpoints/{ep['id']}", json={"enabled": False}, headers=merchant.auth())
        clock.advance(60)
        missed = record(rt, merchant)
        client.patch(f"/v1/endpoints/{ep['id']}", json={"enabled": True}, headers=merchant.auth())
        for_ep = client.get(
            f"/v1/messages?undelivered=true&endpoint_id={ep['id']}", headers=merchant.auth()
        ).json()["data"]
        assert [msg["id"] for msg in for_ep] == [missed]
        # the tenant-wide view lists both: neither ever reached a partner
        listed = client.get("/v1/messages?undelivered=true", headers=merchant.auth()).json()
        assert {msg["id"] for msg in listed["data"]} == {old, missed}
        r = client.post(
            f"/v1/endpoints/{ep['id']}/replay", json={"since": 0}, headers=merchant.auth()
        )
        assert r.json()["missed_messages"] == 1
        drain(rt)
        assert [req.header("webhook-id") for req in partner.requests] == [missed]


def test_lists_show_the_first_bytes_of_an_answer_one_delivery_all_of_it(
    client: Any, rt: Runtime, merchant: Merchant
) -> None:
    answer = b"{" + b"x" * 5000 + b"}"
    with partners.ok(body=answer) as partner:
        ep = register(client, merchant, partner.url)
        partner.expect_signed_by(ep["secret"])
        record(rt, merchant)
        drain(rt)
    [listed] = deliveries(client, merchant, ep["id"])
    [a] = listed["attempts"]
    assert a["response"] == answer[:1024].decode()
    assert a["response_truncated"] is True
    one = client.get(f"/v1/deliveries/{listed['id']}", headers=merchant.auth()).json()
    assert one["attempts"][0]["response"] == answer.decode()
    assert one["attempts"][0]["response_truncated"] is False


def test_a_manual_retry_during_an_attempt_is_refused(
    client: Any, rt: Runtime, merchant: Merchant
) -> None:
    with partners.ok() as partner:
        ep = register(client, merchant, partner.url)
        partner.expect_signed_by(ep["secret"])
        record(rt, merchant)
        [d] = deliveries(client, merchant, ep["id"])
        with rt.db.write() as s:  # a worker holds the job: an attempt is in flight
            [job] = jobstore.claim(s, "worker-a", now=rt.clock.now(), kinds=("deliver",))
        assert job.key == d["id"]
        r = client.post(f"/v1/deliveries/{d['id']}/retry", headers=merchant.auth())
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "attempt_in_progress"
        with rt.db.write() as s:  # that attempt ends (here: put back as a worker would)
            jobstore.reschedule(s, job.id, "worker-a", run_at=rt.clock.now(), now=rt.clock.now())
        r = client.post(f"/v1/deliveries/{d['id']}/retry", headers=merchant.auth())
        assert r.status_code == 200
        drain(rt)
        assert len(partner.requests) == 1


class TestSSRF:
    """Default settings: private targets refused at registration and at connect time."""

    @pytest.fixture
    def settings(self, tmp_path: Path, db_url: str) -> Settings:
        return make_settings(tmp_path, db_url)

    @pytest.fixture
    def rebinding(self) -> Iterator[list[str]]:
        """DNS that answers a public address first (registration), 127.0.0.1 after."""
        calls: list[str] = []

        async def resolver(host: str, port: int) -> list[str]:
            calls.append(host)
            return ["93.184.216.34"] if len(calls) == 1 else ["127.0.0.1"]

        delivery_worker.set_resolver(resolver)
        yield calls
        delivery_worker.set_resolver(None)

    @pytest.fixture
    def private_dns(self) -> Iterator[None]:
        async def resolver(host: str, port: int) -> list[str]:
            if host.startswith("intranet."):
                return ["10.0.0.5", "169.254.169.254"]
            return ["93.184.216.34"]

        delivery_worker.set_resolver(resolver)
        yield
        delivery_worker.set_resolver(None)

    def test_a_name_resolving_only_to_private_addresses_is_refused_at_registration(
        self, client: Any, rt: Runtime, private_dns: None
    ) -> None:
        merchant = new_merchant(client, rt)
        r = client.post(
            "/v1/endpoints", json={"url": "https://intranet.example.com/hook"},
            headers=merchant.auth(),
        )  # fmt: skip
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "url"
        assert "resolves only to forbidden" in r.json()["error"]["message"]
        ok = register(client, merchant, "https://partner.example.com/hook")
        r = client.patch(
            f"/v1/endpoints/{ok['id']}", json={"url": "https://intranet.example.com/x"},
            headers=merchant.auth(),
        )  # fmt: skip
        assert r.status_code == 400

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1/hook",
            "http://2130706433/hook",
            "http://169.254.169.254/latest",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[64:ff9b::a9fe:a9fe]/hook",
            "http://user:pw@partner.example.com/hook",
        ],
    )
    def test_refused_at_registration(self, client: Any, rt: Runtime, url: str) -> None:
        merchant = new_merchant(client, rt)
        r = client.post("/v1/endpoints", json={"url": url}, headers=merchant.auth())
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "url"

    def test_refused_at_connect_time(self, client: Any, rt: Runtime, rebinding: list[str]) -> None:
        merchant = new_merchant(client, rt)
        with partners.ok() as partner:
            url = f"http://partner.example.com:{partner.port}/hook"
            ep = register(client, merchant, url)  # resolves to a public address: accepted
            assert rebinding == ["partner.example.com"]
            record(rt, merchant)
            drain(rt)
            t = client.post(f"/v1/endpoints/{ep['id']}/test", headers=merchant.auth()).json()
            assert partner.requests == []
        [d] = deliveries(client, merchant, ep["id"])
        assert d["attempts"][0]["error_kind"] == "unsafe_target"
        assert t["error_kind"] == "unsafe_target"
        assert t["status_code"] is None
