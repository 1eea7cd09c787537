"""Send one partner message over HTTP, and never let the partner decide how long it takes.

Policy (DESIGN.md: "HTTPS, < 10 s"; research/outbound-webhooks.md §f):

- one *total* deadline (10 s) covers resolution, connect, TLS, upload, response head and body
  read: ``asyncio.timeout`` wraps the whole exchange (a trickling peer cannot reset it) and
  aiohttp's own total timeout only backs it up;
- at most ``max_body`` (64 KiB) of the answer is kept; the raw stream is read chunk by chunk and
  dropped past the cap (no decompression: ``Accept-Encoding: identity`` and raw reads, so a gzip
  bomb stays a small compressed blob);
- redirects are never followed (3xx is a failure; the ``Location`` is only recorded), so a
  partner ``X-API-KEY`` never travels to a host it was not registered for;
- every connection goes through :class:`caisse.delivery.safety.GuardedResolver`;
- every aiohttp/OS exception becomes a :class:`SendResult` with a machine-readable
  ``error_kind``; nothing third-party escapes this module.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import aiohttp

from caisse.delivery.safety import (
    GuardedResolver,
    Resolver,
    check_literal_host,
    default_ssl_context,
)
from caisse.errors import InvalidRequest, UnsafeTarget

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_USER_AGENT",
    "MAX_RESPONSE_BODY",
    "ErrorKind",
    "PartnerClient",
    "SendResult",
    "build_client",
    "sanitize_partner_headers",
    "send",
]

logger = logging.getLogger(__name__)

ErrorKind = Literal["timeout", "connect", "unsafe_target", "tls", "protocol"]

DEFAULT_DEADLINE = 10.0
MAX_RESPONSE_BODY = 64 * 1024
DEFAULT_USER_AGENT = "caisse-webhooks"
_MAX_HEADER_ECHO = 512  # Retry-After / Location kept for the attempt log, not more

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2 field-name
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "user-agent",
        "accept-encoding",
    }
)
_RESERVED_PREFIXES = ("content-", "webhook-", "svix-")
_MAX_PARTNER_HEADERS = 20
_MAX_HEADER_VALUE = 4096


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one attempt produced, ready to be stored as an attempt row."""

    status_code: int | None
    duration_ms: int
    body: bytes
    truncated: bool
    error_kind: ErrorKind | None
    error: str | None
    retry_after: str | None
    location: str | None

    @property
    def ok(self) -> bool:
        """Delivered: a 2xx answer and no error."""
        return (
            self.error_kind is None
            and self.status_code is not None
            and (200 <= self.status_code <= 299)
        )


def sanitize_partner_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Check headers a partner registered (e.g. ``X-API-KEY``); refuse ones that would
    override framing, routing or our signature (``Host``, ``Content-*``, ``webhook-*`` ...)."""
    if not headers:
        return {}
    if len(headers) > _MAX_PARTNER_HEADERS:
        raise InvalidRequest(f"at most {_MAX_PARTNER_HEADERS} headers", param="headers")
    clean: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidRequest("header names and values must be strings", param="headers")
        lower = name.lower()
        if not _TOKEN.fullmatch(name) or len(name) > 256:
            raise InvalidRequest(f"invalid header name {name[:64]!r}", param="headers")
        if lower in _RESERVED_HEADERS or lower.startswith(_RESERVED_PREFIXES):
            raise InvalidRequest(f"header {name!r} cannot be overridden", param="headers")
        if lower in seen:
            raise InvalidRequest(f"header {name!r} given twice", param="headers")
        if len(value) > _MAX_HEADER_VALUE or any(
            ch in "\r\n\0" or (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value
        ):
            raise InvalidRequest(f"invalid value for header {name!r}", param="headers")
        if not value.isascii():
            raise InvalidRequest(f"header {name!r} must be ASCII", param="headers")
        seen.add(lower)
        clean[name] = value.strip()
    return clean


class PartnerClient:
    """The one HTTP client partner deliveries use (one per event loop): aiohttp behind the
    SSRF guard, no redirects, no proxies or ``.netrc`` from the environment, no cookies kept,
    no decompression. aiohttp rather than httpx here: on this path it costs ~0.2 ms of CPU
    per delivery against ~2 ms (docs/benchmarks.md), which is the worker's whole budget."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
    ) -> None:
        self.allow_private = allow_private
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(allow_private=allow_private, resolver=resolver),
            use_dns_cache=False,  # every new connection is resolved and checked again
            ssl=ssl_context or default_ssl_context(),
            limit=max_connections,
            keepalive_timeout=30,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
            trust_env=False,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=DEFAULT_DEADLINE),
        )

    async def aclose(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> PartnerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def build_client(
    *,
    allow_private: bool,
    resolver: Resolver | None = None,
    user_agent: str = DEFAULT_USER_AGENT,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = 100,
) -> PartnerClient:
    """A guarded client (call inside the event loop that will use it)."""
    return PartnerClient(
        allow_private=allow_private,
        resolver=resolver,
        user_agent=user_agent,
        ssl_context=ssl_context,
        max_connections=max_connections,
    )


def _cause_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _classify(exc: Exception) -> tuple[ErrorKind, str]:
    chain = _cause_chain(exc)
    if any(isinstance(item, UnsafeTarget) for item in chain):
        target = next(item for item in chain if isinstance(item, UnsafeTarget))
        return "unsafe_target", str(target)
    if any(isinstance(item, ssl.SSLError | aiohttp.ClientSSLError) for item in chain):
        return "tls", "TLS handshake failed"
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return "timeout", type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Only vetted addresses are ever dialled, so the detail cannot map an internal network.
        return "connect", f"could not connect: {exc.os_error or exc}"[:300]
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "protocol", f"connection broken ({type(exc).__name__})"
    if isinstance(exc, aiohttp.ClientOSError):  # read/write: the peer broke the exchange
        return "protocol", f"connection broken ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return "connect", f"network error ({type(exc).__name__})"
    return "protocol", f"protocol error ({type(exc).__name__})"


def _echo(value: str | None) -> str | None:
    return None if value is None else value[:_MAX_HEADER_ECHO]


async def send(
    client: PartnerClient,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline: float = DEFAULT_DEADLINE,
    max_body: int = MAX_RESPONSE_BODY,
) -> SendResult:
    """POST ``body`` to ``url`` within ``deadline`` seconds in total; never raises for the peer.

    ``headers`` are sent as given (signature headers + sanitised partner headers);
    ``Content-Type: application/json`` is added unless present.
    """
    if deadline <= 0:
        raise ValueError("deadline must be positive")
    if max_body < 0:
        raise ValueError("max_body cannot be negative")
    request_headers = dict(headers)
    if not any(name.lower() == "content-type" for name in request_headers):
        request_headers["Content-Type"] = "application/json"
    status: int | None = None
    retry_after: str | None = None
    location: str | None = None
    buffer = bytearray()
    error_kind: ErrorKind | None = None
    error: str | None = None
    started = time.monotonic()
    try:
        async with asyncio.timeout(deadline):
            check_literal_host(url, allow_private=client.allow_private)
            async with client.session.post(
                url,
                data=body,
                headers=request_headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=deadline),
            ) as response:
                status = response.status
                retry_after = _echo(response.headers.get("retry-after"))
                location = _echo(response.headers.get("location"))
                # Raw bytes as they arrive; stop as soon as we hold one byte past the cap
                # (leaving early closes the connection instead of draining the rest).
                async for chunk in response.content.iter_any():
                    buffer += chunk[: max_body + 1 - len(buffer)]
                    if len(buffer) > max_body:
                        break
    except Exception as exc:  # the boundary: every failure becomes a result
        error_kind, error = _classify(exc)
        if error_kind == "protocol" and not isinstance(exc, aiohttp.ClientError | ValueError):
            logger.warning("unexpected error while delivering", exc_info=exc)
    duration_ms = int((time.monotonic() - started) * 1000)
    truncated = len(buffer) > max_body
    return SendResult(
        status_code=status,
        duration_ms=duration_ms,
        body=bytes(buffer[:max_body]),
        truncated=truncated,
        error_kind=error_kind,
        error=error,
        retry_after=retry_after,
        location=location,
    )
