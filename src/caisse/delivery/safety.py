"""SSRF guard for partner URLs: what a partner may make caisse connect to.

Policy (research/outbound-webhooks.md §f; Svix ``webhook_http_client.rs``):

- at registration, :func:`check_url` refuses malformed URLs, userinfo, non-http(s) schemes,
  plain http for live endpoints, IP literals in odd spellings (``0x7f.1``, ``2130706433``,
  ``0177.0.0.1``, ``127.1`` — resolvers read them as addresses, humans do not) and
  forbidden literal addresses;
- at registration too, best effort, :func:`check_resolves` resolves the name once (through the
  configured resolver) and refuses it when *every* address is forbidden: the merchant learns
  at once that ``partner.example`` points at 10.0.0.5; a name that does not resolve yet is
  accepted (the partner may publish it later);
- at connect time, :class:`GuardedResolver` (aiohttp's resolver) resolves the name itself,
  checks *every* address with :func:`check_address`, and aiohttp dials only those checked IPs;
  TLS SNI and ``Host`` keep the name. A DNS answer that flips to 127.0.0.1 after registration
  (rebinding) never gets dialled; IP-literal hosts, which aiohttp dials without asking a
  resolver, are checked by :func:`check_literal_host` before each request;
- ``allow_private`` (``CAISSE_ALLOW_PRIVATE_TARGETS``) lets loopback/private targets through for
  development and tests; unspecified, multicast and broadcast addresses are refused regardless.

Refusal messages name the kind of range, never whether an internal host exists.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import certifi
import idna
from aiohttp.abc import AbstractResolver, ResolveResult

from caisse.errors import InvalidRequest, UnsafeTarget

__all__ = [
    "GuardedResolver",
    "ResolveError",
    "Resolver",
    "check_address",
    "check_literal_host",
    "check_resolves",
    "check_url",
    "configure_resolver",
    "configured_resolver",
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
    check in :class:`GuardedResolver` still applies: a name that passes here may resolve
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


class ResolveError(OSError):
    """The partner's name has no address (an ``OSError``: aiohttp reports it as a connect
    failure, which is what it is for the attempt log)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system (``getaddrinfo``) without blocking the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
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
        raise ResolveError(f"could not resolve host: {exc.strerror or exc}") from exc
    if not addresses:
        raise ResolveError("could not resolve host: no address")
    for address in addresses:
        check_address(address, allow_private=allow_private)
    return addresses


_configured: Resolver | None = None
REGISTRATION_LOOKUP_TIMEOUT = 3.0


def configure_resolver(resolver: Resolver | None) -> None:
    """The resolver registration checks and new delivery clients use (None: the system's);
    tests play DNS, rebinding included, with it."""
    global _configured
    _configured = resolver


def configured_resolver() -> Resolver | None:
    return _configured


async def _lookup(host: str, port: int) -> list[str]:
    return await asyncio.wait_for(
        (_configured or system_resolver)(host, port), REGISTRATION_LOOKUP_TIMEOUT
    )


def _lookup_blocking(host: str, port: int) -> list[str]:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_lookup(host, port))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from inside a loop
        return pool.submit(asyncio.run, _lookup(host, port)).result()


def check_resolves(url: str, *, allow_private: bool) -> None:
    """Registration-time DNS check (best effort): refuse a name whose every address is
    forbidden; accept one that does not resolve (yet). The connect-time check stays the guard.
    Skipped with ``allow_private`` (private targets are allowed then; the never-ranges are
    still refused at connect time)."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        return  # literals were checked by check_url
    except ValueError:
        pass
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = _lookup_blocking(host, port)
    except (OSError, TimeoutError):
        return
    problems: list[UnsafeTarget] = []
    for address in addresses:
        try:
            check_address(address, allow_private=False)
        except UnsafeTarget as exc:
            problems.append(exc)
    if addresses and len(problems) == len(addresses):
        raise UnsafeTarget(
            f"the url's host resolves only to forbidden addresses ({problems[0].message})",
            param="url",
        )


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for partner connections: resolve, check every address, hand back
    only checked IPs. aiohttp dials the IPs it gets here and keeps the name for TLS SNI,
    certificate checks and ``Host``; with its DNS cache off, every new connection asks again,
    so a name that rebinds to 127.0.0.1 after registration is never dialled."""

    def __init__(self, *, allow_private: bool, resolver: Resolver | None = None) -> None:
        self._allow_private = allow_private
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_safe(
            host, port, allow_private=self._allow_private, resolver=self._resolver
        )
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release: resolution goes through ``getaddrinfo`` each time."""


def check_literal_host(url: str, *, allow_private: bool) -> None:
    """Check a URL whose host is an IP literal (aiohttp dials those without a resolver)."""
    host = urlsplit(url).hostname or ""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        if "%" in host:
            raise UnsafeTarget("IPv6 zone identifiers are not allowed", param="url") from None
        return
    check_address(literal, allow_private=allow_private)


def default_ssl_context() -> ssl.SSLContext:
    """Verified TLS (certifi roots), TLS 1.2 at least; no opt-out."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
