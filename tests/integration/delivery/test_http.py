"""send() against real loopback partners: success, failures, deadline, caps, redirects, SSRF."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import ssl
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from caisse.delivery import signing
from caisse.delivery.http import (
    MAX_RESPONSE_BODY,
    PartnerClient,
    SendResult,
    build_client,
    sanitize_partner_headers,
    send,
)
from caisse.delivery.retry import RetryPolicy
from caisse.delivery.safety import resolve_safe
from caisse.errors import InvalidRequest
from support import partners

pytestmark = pytest.mark.anyio

API_KEY = "pk_partner_0123456789abcdef0123456789abcdef"
BODY = json.dumps(
    {"type": "order.paid", "timestamp": "2026-03-01T12:00:00Z", "data": {"id": "ord_1"}},
    separators=(",", ":"),
).encode()


@pytest.fixture
async def client() -> AsyncIterator[PartnerClient]:
    async with build_client(allow_private=True, user_agent="caisse-test/1") as client:
        yield client


def signed_headers(secret: str, msg_id: str = "msg_test1") -> dict[str, str]:
    headers = signing.headers(msg_id, int(time.time()), BODY, [secret])
    return {**headers, **sanitize_partner_headers({"X-API-KEY": API_KEY})}


async def test_ok_partner_receives_exact_bytes_and_verifiable_signature(
    client: PartnerClient,
) -> None:
    secret = signing.new_secret()
    with partners.ok() as partner:
        result = await send(client, partner.url, BODY, signed_headers(secret))
    assert result.ok
    assert result.status_code == 200
    assert result.error_kind is None
    assert result.body == b'{"received": true}'
    assert not result.truncated
    assert 0 <= result.duration_ms < 5000
    [request] = partner.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.body == BODY
    assert request.header("x-api-key") == API_KEY
    assert request.header("content-type") == "application/json"
    assert request.header("user-agent") == "caisse-test/1"
    assert request.header("accept-encoding") == "identity"
    assert request.header("host") == f"127.0.0.1:{partner.port}"
    # The partner verifies with the reference library, from the wire bytes.
    assert Webhook(secret).verify(request.body, request.header_dict)["type"] == "order.paid"


async def test_fail_then_succeed_same_id_fresh_signature(client: PartnerClient) -> None:
    secret = signing.new_secret()
    policy = RetryPolicy(uniform=lambda low, high: 1.0)
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    statuses = []
    with partners.fail_then_succeed(2) as partner:
        for attempt in (1, 2, 3):
            headers = signing.headers("msg_retry", 1_700_000_000 + attempt, BODY, [secret])
            result = await send(client, partner.url, BODY, headers)
            statuses.append(result.status_code)
            decision = policy.decide(
                attempt,
                status_code=result.status_code,
                error_kind=result.error_kind,
                retry_after=result.retry_after,
                now=now,
            )
            assert decision.delivered == (attempt == 3)
    assert statuses == [500, 500, 200]
    ids = {r.header("webhook-id") for r in partner.requests}
    signatures = {r.header("webhook-signature") for r in partner.requests}
    assert ids == {"msg_retry"}
    assert len(signatures) == 3


async def test_hanging_partner_hits_the_total_deadline(client: PartnerClient) -> None:
    with partners.hang() as partner:
        started = time.monotonic()
        result = await send(client, partner.url, BODY, {}, deadline=1.0)
        elapsed = time.monotonic() - started
    assert result.error_kind == "timeout"
    assert result.status_code is None
    assert not result.ok
    assert 0.9 <= elapsed < 2.5
    assert 900 <= result.duration_ms < 2500
    assert len(partner.requests) == 1


async def test_trickling_body_cannot_outlive_the_deadline(client: PartnerClient) -> None:
    # Headers come at once and each byte arrives within any per-read timeout:
    # only a total deadline stops this partner.
    with partners.trickle(seconds=12, interval=0.1) as partner:
        started = time.monotonic()
        result = await send(client, partner.url, BODY, {}, deadline=1.0)
        elapsed = time.monotonic() - started
    assert result.error_kind == "timeout"
    assert result.status_code == 200  # what we saw before giving up
    assert not result.ok
    assert 0.9 <= elapsed < 2.5
    assert 0 < len(result.body) < 30


async def test_huge_answer_is_capped_and_memory_stays_bounded(
    client: PartnerClient,
) -> None:
    with partners.huge() as partner:
        tracemalloc.start()
        try:
            result = await send(client, partner.url, BODY, {})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await asyncio.sleep(0.2)  # let the server notice the disconnect
    assert result.ok
    assert result.truncated
    assert len(result.body) == MAX_RESPONSE_BODY
    # tracemalloc also counts the in-process partner's buffers; reading all 100 MB would not fit.
    assert peak < 32 * 1024 * 1024
    assert partner.bytes_sent < partners.HUGE_SIZE // 4
    assert result.duration_ms < 5000


async def test_custom_body_cap(client: PartnerClient) -> None:
    with partners.huge(size=10_000) as partner:
        result = await send(client, partner.url, BODY, {}, max_body=100)
    assert result.body == b"x" * 100
    assert result.truncated
    with partners.huge(size=100) as partner:
        result = await send(client, partner.url, BODY, {}, max_body=100)
    assert result.body == b"x" * 100
    assert not result.truncated


async def test_redirect_is_not_followed_and_the_api_key_stays_home(
    client: PartnerClient,
) -> None:
    with partners.ok() as target, partners.redirect(target.url) as partner:
        result = await send(client, partner.url, BODY, signed_headers(signing.new_secret()))
    assert result.status_code == 302
    assert not result.ok
    assert result.location == target.url
    assert partner.requests[0].header("x-api-key") == API_KEY
    assert target.requests == []  # neither the message nor X-API-KEY reached it


async def test_429_reports_retry_after(client: PartnerClient) -> None:
    with partners.throttled(retry_after="120") as partner:
        result = await send(client, partner.url, BODY, {})
    assert result.status_code == 429
    assert result.retry_after == "120"
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    decision = RetryPolicy(uniform=lambda low, high: 1.0).decide(
        1, status_code=429, error_kind=None, retry_after=result.retry_after, now=now
    )
    assert decision.retry_at == now + dt.timedelta(seconds=120)


async def test_410_disables_the_endpoint(client: PartnerClient) -> None:
    with partners.gone() as partner:
        result = await send(client, partner.url, BODY, {})
    assert result.status_code == 410
    decision = RetryPolicy().decide(
        1,
        status_code=result.status_code,
        error_kind=result.error_kind,
        retry_after=None,
        now=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    )
    assert decision.give_up
    assert decision.disable_endpoint


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused(client: PartnerClient) -> None:
    result = await send(client, f"http://127.0.0.1:{_free_port()}/hook", BODY, {})
    assert result.error_kind == "connect"
    assert result.error is not None
    assert result.error.startswith("could not connect")
    assert result.status_code is None


async def test_loopback_is_refused_without_allow_private() -> None:
    with partners.ok() as partner:
        async with build_client(allow_private=False) as guarded:
            result = await send(guarded, partner.url, BODY, {})
    assert result.error_kind == "unsafe_target"
    assert result.error is not None
    assert "loopback" in result.error
    assert partner.requests == []


async def test_dns_rebinding_is_refused_at_connect_time() -> None:
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["93.184.216.34"] if len(calls) == 1 else ["127.0.0.1"]

    with partners.ok() as partner:
        # Registration-time lookup: a public address, the URL looks fine...
        await resolve_safe("rebind.example", partner.port, allow_private=False, resolver=rebinding)
        async with build_client(allow_private=False, resolver=rebinding) as guarded:
            result = await send(guarded, f"http://rebind.example:{partner.port}/hook", BODY, {})
    # ...but the connect-time lookup answers 127.0.0.1, and nothing is dialled.
    assert result.error_kind == "unsafe_target"
    assert calls == ["rebind.example", "rebind.example"]
    assert partner.requests == []


async def test_the_name_is_resolved_at_connect_time_and_kept_in_host() -> None:
    calls: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["127.0.0.1"]

    with partners.ok() as partner:
        async with build_client(allow_private=True, resolver=resolver) as named:
            result = await send(named, f"http://partner.test:{partner.port}/hook", BODY, {})
    assert result.ok
    assert calls == [("partner.test", partner.port)]
    assert partner.requests[0].header("host") == f"partner.test:{partner.port}"


async def test_deadline_covers_name_resolution() -> None:
    async def slow_dns(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["127.0.0.1"]

    async with build_client(allow_private=True, resolver=slow_dns) as slow:
        started = time.monotonic()
        result = await send(slow, "http://partner.test:9/hook", BODY, {}, deadline=0.5)
    assert result.error_kind == "timeout"
    assert time.monotonic() - started < 2


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    return partners.make_tls_files(tmp_path, "partner.test")


async def test_tls_sni_and_verification_use_the_name_while_dialling_the_ip(
    tls_files: tuple[Path, Path],
) -> None:
    certfile, keyfile = tls_files

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    trusting = ssl.create_default_context(cafile=str(certfile))
    with partners.tls_ok(certfile, keyfile) as partner:
        async with build_client(
            allow_private=True, resolver=resolver, ssl_context=trusting
        ) as tls_client:
            result = await send(tls_client, partner.url, BODY, {})
            # Same server by IP: the certificate names partner.test, not 127.0.0.1.
            by_ip = await send(tls_client, f"https://127.0.0.1:{partner.port}/hook", BODY, {})
        async with build_client(allow_private=True, resolver=resolver) as default_tls:
            untrusted = await send(default_tls, partner.url, BODY, {})
    assert result.ok, result
    assert partner.requests[0].header("host") == f"partner.test:{partner.port}"
    assert by_ip.error_kind == "tls"
    assert untrusted.error_kind == "tls"  # self-signed: not in certifi's roots
    assert len(partner.requests) == 1


async def test_plain_http_to_a_tls_port_is_a_protocol_failure(
    tls_files: tuple[Path, Path], client: PartnerClient
) -> None:
    certfile, keyfile = tls_files
    with partners.tls_ok(certfile, keyfile) as partner:
        result = await send(client, f"http://127.0.0.1:{partner.port}/hook", BODY, {}, deadline=3)
    assert result.error_kind == "protocol"
    assert result.status_code is None


async def test_garbage_answer_is_a_protocol_error(client: PartnerClient) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SMTP READY\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await send(client, f"http://127.0.0.1:{port}/hook", BODY, {})
    assert result.error_kind == "protocol"
    assert result.status_code is None


async def test_peer_closing_mid_body_is_reported(client: PartnerClient) -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(short, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await send(client, f"http://127.0.0.1:{port}/hook", BODY, {})
    assert result.status_code == 200
    assert result.error_kind == "protocol"
    assert not result.ok
    assert result.body == b"partial"


@pytest.mark.parametrize(
    "url", ["not a url", "ftp://partner.example/x", "http://", "http://[::1/x", ""]
)
async def test_bad_urls_never_raise(client: PartnerClient, url: str) -> None:
    result = await send(client, url, BODY, {})
    assert isinstance(result, SendResult)
    assert result.error_kind == "protocol"


async def test_header_injection_never_raises(client: PartnerClient) -> None:
    with partners.ok() as partner:
        result = await send(client, partner.url, BODY, {"X-Evil": "a\r\nHost: evil"})
    assert result.error_kind == "protocol"
    assert partner.requests == []


async def test_invalid_arguments_are_programming_errors(client: PartnerClient) -> None:
    with pytest.raises(ValueError, match="deadline"):
        await send(client, "http://127.0.0.1/", BODY, {}, deadline=0)
    with pytest.raises(ValueError, match="max_body"):
        await send(client, "http://127.0.0.1/", BODY, {}, max_body=-1)


# -- partner header rules ----------------------------------------------------------------------


def test_sanitize_keeps_ordinary_headers() -> None:
    assert sanitize_partner_headers(None) == {}
    assert sanitize_partner_headers({"X-API-KEY": API_KEY, "X-Partner": "caisse"}) == {
        "X-API-KEY": API_KEY,
        "X-Partner": "caisse",
    }


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"host": "evil.example"},
        {"Content-Length": "0"},
        {"Content-Type": "text/plain"},
        {"content-encoding": "gzip"},
        {"Transfer-Encoding": "chunked"},
        {"Connection": "close"},
        {"Upgrade": "h2c"},
        {"webhook-signature": "v1,forged"},
        {"Webhook-Id": "msg_x"},
        {"webhook-timestamp": "1"},
        {"X-Ok": "a\r\nHost: evil"},
        {"X-Ok": "a\nb"},
        {"X-Ok": "a\x00b"},
        {"Bad Name": "x"},
        {"X:Colon": "x"},
        {"": "x"},
        {"X-Ok": "é"},
        {"X-Ok": "x" * 5000},
        {"X-Api-Key": "a", "x-api-key": "b"},
        {f"X-{i}": "v" for i in range(21)},
    ],
)
def test_sanitize_refuses_overrides_and_injection(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest) as info:
        sanitize_partner_headers(headers)
    assert info.value.param == "headers"
