"""Real loopback HTTP partners for delivery tests.

Each partner is a uvicorn server on ``127.0.0.1`` (port 0, so tests never collide) running in
its own thread and event loop, so a partner that hangs or trickles cannot stall the test's loop.
Every request is recorded (method, path, headers, exact body bytes) before the behaviour runs,
and ``in_flight`` / ``max_in_flight`` count the requests being answered at once.

Give a partner its endpoint's secret(s) (``partner.expect_signed_by(secret)``, once the
endpoint is registered) and every request it records is verified as a real partner would,
with ``standardwebhooks``; leaving the ``with`` block raises if any request was not signed by
one of them (timestamps older than the library's 5 min tolerance — a test clock moved days
ahead — are checked by recomputing the signature with the same library instead).

    with partners.ok() as partner:
        result = await send(client, partner.url, body, headers)
        assert partner.requests[0].body == body
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Behaviour = Callable[["PartnerServer", "RecordedRequest", Receive, Send], Awaitable[None]]

HUGE_SIZE = 100 * 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request exactly as the partner saw it."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    received_at: float

    def header(self, name: str) -> str | None:
        """First value of a header, case-insensitive (as a partner framework would read it)."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)

    @property
    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)


@dataclass
class PartnerServer:
    """A running partner; use as a context manager. ``url`` points at ``/hook``."""

    behaviour: Behaviour
    certfile: Path | None = None
    keyfile: Path | None = None
    host_name: str = "127.0.0.1"
    requests: list[RecordedRequest] = field(default_factory=list)
    bytes_sent: int = 0
    port: int = 0
    secrets: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host_name}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body=bytes(body),
            received_at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.behaviour(self, request, receive, send)
        finally:
            with self._lock:
                self.in_flight -= 1

    def expect_signed_by(self, *secrets: str) -> PartnerServer:
        """Verify every request (past and future) against these endpoint secrets."""
        self.secrets.extend(secrets)
        return self

    def problems(self) -> list[str]:
        """Why recorded requests fail verification (empty when all are correctly signed)."""
        if not self.secrets:
            return []
        with self._lock:
            requests = list(self.requests)
        return [p for p in (_check_signed(r, self.secrets) for r in requests) if p]

    def __enter__(self) -> PartnerServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted sockets: no Nagle/delayed-ACK 40 ms stalls between writes.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            log_level="warning",
            access_log=False,
            loop="asyncio",
            http="h11",
            timeout_graceful_shutdown=1,
            ssl_certfile=str(self.certfile) if self.certfile else None,
            ssl_keyfile=str(self.keyfile) if self.keyfile else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("partner server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.should_exit = True
        self._server.force_exit = True  # hanging/trickling handlers must not hold us up
        self._thread.join(timeout=10)
        problems = self.problems()
        if problems and exc_info[0] is None:
            raise AssertionError("partner received unverifiable requests: " + "; ".join(problems))


def _check_signed(request: RecordedRequest, secrets: list[str]) -> str | None:
    """None if one of ``secrets`` signed ``request`` (Standard Webhooks), else why not."""
    headers = request.header_dict
    msg_id, stamp, signatures = (
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    )
    if not (msg_id and stamp and signatures and stamp.isdigit()):
        return f"{request.path}: missing or malformed webhook-* headers"
    when = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
    recent = abs(time.time() - int(stamp)) < 240
    offered = set(signatures.split())
    for secret in secrets:
        wh = Webhook(secret)
        if recent:
            try:
                wh.verify(request.body, headers)
                return None
            except WebhookVerificationError:
                continue
        elif wh.sign(msg_id, when, request.body.decode()) in offered:
            return None
    return f"{msg_id}: not signed by any expected secret"


# -- behaviours ------------------------------------------------------------------------------


async def _respond(
    send: Send,
    status: int,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    all_headers = [(b"content-type", b"application/json"), *(headers or [])]
    all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def ok(status: int = 200, body: bytes = b'{"received": true}') -> PartnerServer:
    """Answers every request with ``status`` at once."""

    async def behaviour(srv: PartnerServer, req: RecordedRequest, rcv: Receive, snd: Send) -> None:
        await _respond(snd, status, body)

    return PartnerServer(behaviour)


def fail_then_succeed(failures: int, status: int = 500) -> PartnerServer:
    """Answers ``status`` to the first ``failures`` requests, then 200."""

    async def behaviour(srv: PartnerServer, req: RecordedRequest, rcv: Receive, snd: Send) -> None:
        if len(srv.requests) <= failures:
            await _respond(snd, status, b'{"error": "try later"}')
        else:
            await _respond(snd, 200, b'{"received": true}')

    return PartnerServer(behaviour)


def hang() -> PartnerServer:
    """Accepts the request, reads it, never answers (until the client goes away)."""

    async def behaviour(srv: PartnerServer, req: RecordedRequest, rcv: Receive, snd: Send) -> None:
        await _until_disconnect(rcv)

    return PartnerServer(behaviour)


def trickle(seconds: float = 12.0, interval: float = 0.1, chunk: bytes = b".") -> PartnerServer:
    """Sends 200 and its headers at once, then one small chunk per ``interval`` for ``seconds``
    — each read succeeds quickly, so only a total deadline stops it."""

    async def behaviour(srv: PartnerServer, req: RecordedRequest, rcv: Receive, snd: Send) -> None:
        count = int(seconds / interval)
        headers = [(b"content-length", str(count * len(chunk)).encode())]
        await snd({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.ensure_future(_until_disconnect(rcv))
        try:
            for _ in range(count):
                if gone.done():
                    return
                await snd({"type": "http.response.body", "body": chunk, "more_body": True})
                srv.bytes_sent += len(chunk)
                await asyncio.sleep(interval)
            await snd({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()

    return PartnerServer(behaviour)


def redirect(location: str, status: int = 302) -> PartnerServer:
    """Answers a redirect to ``location`` (usually another recorded partner)."""

    async def behaviour(srv: PartnerServer, req: RecordedRequest, rcv: Receive, snd: Send) -> None:
        await _respond(snd, status, b"", [(b"location", location.encode())])

    return PartnerServer(behaviour)


def throttled(retry_after: str = "120") -> PartnerServer:
    """Answers 429 Too Many Requests with a ``Retry-After`` header."""

    async def behaviour(srv: PartnerServer, req: RecordedRequest, rcv: Receive, snd: Send) -> None:
        headers = [(b"retry-after", retry_after.encode())]
        await _respond(snd, 429, b'{"error": "slow down"}', headers)

    return PartnerServer(behaviour)


def gone() -> PartnerServer:
    """Answers 410 Gone: the partner retired this endpoint."""

    async def behaviour(srv: PartnerServer, req: RecordedRequest, rcv: Receive, snd: Send) -> None:
        await _respond(snd, 410, b'{"error": "gone"}')

    return PartnerServer(behaviour)


def huge(size: int = HUGE_SIZE, chunk_size: int = 64 * 1024) -> PartnerServer:
    """Answers 200 with a ``size``-byte body streamed as fast as the client reads it;
    ``bytes_sent`` tells how much actually left the server."""

    async def behaviour(srv: PartnerServer, req: RecordedRequest, rcv: Receive, snd: Send) -> None:
        headers = [(b"content-length", str(size).encode())]
        await snd({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.ensure_future(_until_disconnect(rcv))
        block = b"x" * chunk_size
        try:
            remaining = size
            while remaining > 0 and not gone.done():
                piece = block[: min(chunk_size, remaining)]
                await snd({"type": "http.response.body", "body": piece, "more_body": True})
                srv.bytes_sent += len(piece)
                remaining -= len(piece)
                await asyncio.sleep(0)  # let the disconnect watcher run
            if not gone.done():
                await snd({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()

    return PartnerServer(behaviour)


# -- TLS ----------------------------------------------------------------------------------------


def make_tls_files(directory: Path, hostname: str = "partner.test") -> tuple[Path, Path]:
    """A self-signed certificate for ``hostname`` (its own CA), as (certfile, keyfile)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    certfile = directory / "partner-cert.pem"
    keyfile = directory / "partner-key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def tls_ok(certfile: Path, keyfile: Path, host_name: str = "partner.test") -> PartnerServer:
    """Like :func:`ok`, over TLS with the given certificate; ``url`` uses ``host_name``."""
    server = ok()
    server.certfile, server.keyfile, server.host_name = certfile, keyfile, host_name
    return server
