"""SSRF guard for partner URLs: what a partner may make caisse connect to.

Policy (research/outbound-webhooks.md §f; Svix ``webhook_http_client.rs``):

- at registration, :func:`check_url` refuses malformed URLs, userinfo, non-http(s) schemes,
  plain http for live endpoints, IP literals in odd spellings (``0x7f.1``, ``2130706433``,
  ``0177.0.0.1``, ``127.1`` — resolvers read them as addresses, humans do not) and
  forbidden literal addresses;
- at connect time, :class:`GuardedNetworkBackend` resolves the name itself, checks *every*
  address with :func:`check_address`, and dials the checked IP; TLS SNI and ``Host`` keep the
  name. A DNS answer that flips to 127.0.0.1 after registration (rebinding) never gets dialled;
- ``allow_private`` (``CAISSE_ALLOW_PRIVATE_TARGETS``) lets loopback/private targets through for
  development and tests; unspecified, multicast and broadcast addresses are refused regardless.

Refusal messages name the kind of range, never whether an internal host exists.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx
import idna

from caisse.errors import InvalidRequest, UnsafeTarget

__all__ = [
    "GuardedNetworkBackend",
    "GuardedTransport",
    "Resolver",
    "check_address",
    "check_url",
    "default_ssl_context",
    "resolve_safe",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``async (host, port) -> [ip, ...]``; injectable so tests can play DNS, rebinding included.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_N4 = ipaddress.IPv4Network
_N6 = ipaddress.IPv6Network

# Refused even with allow_private: no TCP service lives there.
_V4_NEVER: tuple[tuple[_N4, str], ...] = (
    (_N4("0.0.0.0/8"), "unspecified"),
    (_N4("224.0.0.0/4"), "multicast"),
    (_N4("255.255.255.255/32"), "broadcast"),
)
# IANA special-purpose registry, non-global entries.
_V4_PRIVATE: tuple[tuple[_N4, str], ...] = (
    (_N4("10.0.0.0/8"), "private"),
    (_N4("100.64.0.0/10"), "shared (CGNAT)"),
    (_N4("127.0.0.0/8"), "loopback"),
    (_N4("169.254.0.0/16"), "link-local (cloud metadata)"),
    (_N4("172.16.0.0/12"), "private"),
    (_N4("192.0.0.0/24"), "IETF protocol assignments"),
    (_N4("192.0.2.0/24"), "documentation"),
    (_N4("192.31.196.0/24"), "AS112"),
    (_N4("192.52.193.0/24"), "AMT"),
    (_N4("192.88.99.0/24"), "6to4 relay anycast"),
    (_N4("192.168.0.0/16"), "private"),
    (_N4("192.175.48.0/24"), "AS112"),
    (_N4("198.18.0.0/15"), "benchmarking"),
    (_N4("198.51.100.0/24"), "documentation"),
    (_N4("203.0.113.0/24"), "documentation"),
    (_N4("240.0.0.0/4"), "reserved"),
)
_V6_NEVER: tuple[tuple[_N6, str], ...] = (
    (_N6("::/128"), "unspecified"),
    (_N6("ff00::/8"), "multicast"),
)
_V6_LOOPBACK = _N6("::1/128")
_V6_MAPPED = _N6("::ffff:0:0/96")
_V6_COMPATIBLE = _N6("::/96")
_V6_NAT64 = _N6("64:ff9b::/96")
_V6_6TO4 = _N6("2002::/16")
_V6_GLOBAL_UNICAST = _N6("2000::/3")
_V6_PRIVATE: tuple[tuple[_N6, str], ...] = (
    (_N6("64:ff9b:1::/48"), "local-use NAT64"),
    (_N6("100::/64"), "discard-only"),
    (_N6("2001::/32"), "Teredo"),
    (_N6("2001::/23"), "IETF protocol assignments"),
    (_N6("2001:db8::/32"), "documentation"),
    (_N6("3fff::/20"), "documentation"),
    (_N6("5f00::/16"), "SRv6 SIDs"),
    (_N6("fc00::/7"), "unique local"),
    (_N6("fe80::/10"), "link-local"),
    (_N6("fec0::/10"), "site-local"),
)

_BLOCKED_NAMES = ("localhost",)
_BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".arpa")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
_DECIMAL_OCTET = re.compile(r"(?:0|[1-9][0-9]{0,2})")
_DNS_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_MAX_URL = 2048


def _v4_problem(ip: ipaddress.IPv4Address, allow_private: bool) -> str | None:
    for net, label in _V4_NEVER:
        if ip in net:
            return label
    if allow_private:
        return None
    for net, label in _V4_PRIVATE:
        if ip in net:
            return label
    # Safety net for ranges IANA adds later: the stdlib's view must agree.
    return None if ip.is_global else "non-global"


def _v6_problem(ip: ipaddress.IPv6Address, allow_private: bool) -> str | None:
    if ip.scope_id:
        return "scoped (zone id)"
    mapped = ip.ipv4_mapped
    if mapped is not None:  # ::ffff:a.b.c.d reaches a.b.c.d through a dual-stack socket
        problem = _v4_problem(mapped, allow_private)
        return f"IPv4-mapped {problem}" if problem else None
    for net, label in _V6_NEVER:
        if ip in net:
            return label
    if allow_private:
        return None
    if ip in _V6_LOOPBACK:
        return "loopback"
    if ip in _V6_COMPATIBLE:
        return "IPv4-compatible (deprecated)"
    if ip in _V6_NAT64:  # RFC 6052: the last 32 bits are the IPv4 destination
        problem = _v4_problem(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), allow_private)
        return f"NAT64 {problem}" if problem else None
    if ip in _V6_6TO4:
        sixtofour = ip.sixtofour
        assert sixtofour is not None
        problem = _v4_problem(sixtofour, allow_private)
        return f"6to4 {problem}" if problem else None
    for net, label in _V6_PRIVATE:
        if ip in net:
            return label
    if ip not in _V6_GLOBAL_UNICAST:
        return "reserved"
    return None if ip.is_global else "non-global"


def check_address(ip: str | IPAddress, *, allow_private: bool = False) -> None:
    """Refuse (``UnsafeTarget``) an address a partner URL must never make us connect to."""
    if isinstance(ip, str):
        try:
            ip = ipaddress.ip_address(ip)
        except ValueError:
            raise UnsafeTarget("destination is not a valid IP address", param="url") from None
    if isinstance(ip, ipaddress.IPv4Address):
        problem = _v4_problem(ip, allow_private)
    else:
        problem = _v6_problem(ip, allow_private)
    if problem is not None:
        raise UnsafeTarget(f"destination address is not allowed ({problem} range)", param="url")


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="url")


def _check_name(host: str, *, allow_private: bool) -> str:
    """Normalise a DNS name (IDNA, lower case) and refuse ones that are addresses in disguise."""
    if host.endswith("."):
        # "localhost." and "127.0.0.1." resolve like their dotless twins but slip past
        # string comparisons; partner URLs never need a root-anchored name.
        raise UnsafeTarget("host names ending with '.' are not allowed", param="url")
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            raise _invalid("host is not a valid internationalised domain name") from None
    host = host.lower()
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # WHATWG URL: a host whose last label is numeric is an IPv4 address. Only the
        # canonical dotted quad is accepted; inet_aton's hex/octal/short forms are refused.
        if len(labels) != 4 or not all(_DECIMAL_OCTET.fullmatch(part) for part in labels):
            raise UnsafeTarget("unusual IP address spelling is not allowed", param="url")
        address = ipaddress.IPv4Address(host)
        check_address(address, allow_private=allow_private)
        return str(address)
    if len(host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise _invalid("host is not a valid domain name")
    if not allow_private and (host in _BLOCKED_NAMES or host.endswith(_BLOCKED_SUFFIXES)):
        raise UnsafeTarget("destination host is not allowed (local name)", param="url")
    return host


def check_url(url: str, *, live: bool, allow_private: bool) -> str:
    """Validate a partner URL at registration and return it normalised.

    Raises ``InvalidRequest`` for a malformed URL and ``UnsafeTarget`` for a forbidden
    destination, both with ``param="url"``. Live endpoints must use https. The connect-time
    check in :class:`GuardedNetworkBackend` still applies: a name that passes here may resolve
    to a forbidden address later.
    """
    url = url.strip()
    if not url:
        raise _invalid("url is empty")
    if len(url) > _MAX_URL:
        raise _invalid(f"url is longer than {_MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in url):
        raise _invalid("url contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _invalid("url is not valid") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _invalid("url must use https" if live else "url must use http or https")
    if live and scheme != "https":
        raise _invalid("live endpoints must use https")
    netloc = parts.netloc
    if "@" in netloc or parts.username is not None or parts.password is not None:
        raise _invalid("credentials in the url are not allowed; register an api_key instead")
    raw_host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    if not raw_host or raw_host in ("[]",):
        raise _invalid("url has no host")
    if port == 0:
        raise _invalid("url port must be between 1 and 65535")

    if raw_host.startswith("["):
        literal = raw_host[1:].split("]", 1)[0]
        if "%" in literal:
            raise UnsafeTarget("IPv6 zone identifiers are not allowed", param="url")
        try:
            ip6 = ipaddress.IPv6Address(literal)
        except ValueError:
            raise _invalid("url has an invalid IPv6 address") from None
        check_address(ip6, allow_private=allow_private)
        host = f"[{ip6.compressed}]"
    else:
        host = _check_name(raw_host, allow_private=allow_private)

    default_port = 443 if scheme == "https" else 80
    port_part = f":{port}" if port is not None and port != default_port else ""
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{port_part}{path}{query}"


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system (``getaddrinfo``) without blocking the event loop."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def resolve_safe(
    host: str, port: int, *, allow_private: bool, resolver: Resolver | None = None
) -> list[str]:
    """Resolve ``host`` and return its addresses only if every one of them is allowed.

    One bad address refuses the whole name: a round-robin answer mixing a public and a
    private address is a classic rebinding set-up.
    """
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, allow_private=allow_private)
        return [str(literal)]
    try:
        addresses = await (resolver or system_resolver)(host, port)
    except OSError as exc:
        raise httpcore.ConnectError(f"could not resolve host: {exc.strerror or exc}") from exc
    if not addresses:
        raise httpcore.ConnectError("could not resolve host: no address")
    for address in addresses:
        check_address(address, allow_private=allow_private)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks and dials the checked IP itself.

    httpcore passes the URL's host to ``connect_tcp`` and uses the same host for SNI and
    certificate checks afterwards (``httpcore._async.connection``), so dialling the vetted IP
    here keeps TLS verification and the ``Host`` header on the name.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_safe(
            host, port, allow_private=self._allow_private, resolver=self._resolver
        )
        failure: Exception | None = None
        for address in addresses:  # every one was checked: falling back is safe
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeTarget("unix sockets are not a partner destination", param="url")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def default_ssl_context() -> ssl.SSLContext:
    """Verified TLS (certifi roots, as httpx does), TLS 1.2 at least; no opt-out."""
    context = httpx.create_ssl_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _httpcore_to_httpx() -> tuple[tuple[type[Exception], type[httpx.HTTPError]], ...]:
    # Most specific first; the same table httpx keeps privately in _transports/default.py.
    return (
        (httpcore.ConnectTimeout, httpx.ConnectTimeout),
        (httpcore.ReadTimeout, httpx.ReadTimeout),
        (httpcore.WriteTimeout, httpx.WriteTimeout),
        (httpcore.PoolTimeout, httpx.PoolTimeout),
        (httpcore.TimeoutException, httpx.TimeoutException),
        (httpcore.ConnectError, httpx.ConnectError),
        (httpcore.ReadError, httpx.ReadError),
        (httpcore.WriteError, httpx.WriteError),
        (httpcore.NetworkError, httpx.NetworkError),
        (httpcore.ProxyError, httpx.ProxyError),
        (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
        (httpcore.LocalProtocolError, httpx.LocalProtocolError),
        (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
        (httpcore.ProtocolError, httpx.ProtocolError),
    )


_EXCEPTION_MAP = _httpcore_to_httpx()


def _as_httpx(exc: Exception) -> Exception:
    for source, target in _EXCEPTION_MAP:
        if isinstance(exc, source):
            return target(str(exc))
    return exc


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except Exception as exc:
            mapped = _as_httpx(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose every connection goes through :class:`GuardedNetworkBackend`.

    Built on ``httpcore.AsyncConnectionPool`` directly because ``httpx.AsyncHTTPTransport``
    does not expose a network backend; there is no proxy support on purpose (an environment
    proxy would dial for us, past the address check).
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or default_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=GuardedNetworkBackend(
                allow_private=allow_private, resolver=resolver, inner=network_backend
            ),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the guarded pool; httpcore errors come out as their httpx twins."""
        if request.url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol("only http and https partner urls are supported")
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            core_response = await self._pool.handle_async_request(core_request)
        except Exception as exc:
            mapped = _as_httpx(exc)
            if mapped is exc:  # ours (UnsafeTarget) or already foreign-free
                raise
            raise mapped from exc
        assert isinstance(core_response.stream, AsyncIterable)
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_ResponseStream(core_response.stream),
            extensions=core_response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
