"""SSRF guard: the URL table, the address table and connect-time resolution (rebinding)."""

from __future__ import annotations

import socket

import pytest
from aiohttp.abc import ResolveResult

from caisse.delivery.safety import (
    GuardedResolver,
    ResolveError,
    check_address,
    check_literal_host,
    check_url,
    resolve_safe,
)
from caisse.errors import InvalidRequest, UnsafeTarget

# -- addresses -------------------------------------------------------------------------------

BLOCKED_ADDRESSES = [
    # IPv4
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.10",  # TEST-NET-1
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.7",  # TEST-NET-2
    "203.0.113.9",  # TEST-NET-3
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    # IPv6
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::ffff:0.0.0.0",
    "::127.0.0.1",  # IPv4-compatible
    "::8.8.8.8",  # IPv4-compatible, even with a public v4: deprecated
    "64:ff9b::7f00:1",  # NAT64 → 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 → 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 → 10.0.0.1
    "64:ff9b:1::1",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 → 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 → 169.254.169.254
    "2002:c0a8:101::1",  # 6to4 → 192.168.1.1
    "2001::1",  # Teredo
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1",  # documentation
    "3fff::1",  # documentation (RFC 9637)
    "100::1",  # discard-only
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6 (ULA)
    "fe80::1",
    "fec0::1",  # site-local
    "ff02::1",
    "5f00::1",  # SRv6
    "4000::1",  # outside 2000::/3: unassigned
    "fe80::1%eth0",  # zone id
    # not an address at all
    "not-an-ip",
    "127.1",
]

ALLOWED_ADDRESSES = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "192.169.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4007:80e::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped public
    "64:ff9b::808:808",  # NAT64 → 8.8.8.8
    "2002:808:808::1",  # 6to4 → 8.8.8.8
]


@pytest.mark.parametrize("ip", BLOCKED_ADDRESSES)
def test_blocked_addresses(ip: str) -> None:
    with pytest.raises(UnsafeTarget) as info:
        check_address(ip)
    assert info.value.param == "url"


@pytest.mark.parametrize("ip", ALLOWED_ADDRESSES)
def test_public_addresses_pass(ip: str) -> None:
    check_address(ip)


@pytest.mark.parametrize(
    "ip", ["127.0.0.1", "10.0.0.1", "192.168.1.1", "::1", "fd00::1", "::ffff:127.0.0.1"]
)
def test_allow_private_lets_local_targets_through(ip: str) -> None:
    check_address(ip, allow_private=True)


@pytest.mark.parametrize(
    "ip", ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1", "::ffff:224.0.0.1"]
)
def test_never_allowed_even_with_allow_private(ip: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_address(ip, allow_private=True)


def test_message_names_the_range_not_the_address() -> None:
    with pytest.raises(UnsafeTarget) as info:
        check_address("169.254.169.254")
    assert "169.254" not in info.value.message
    assert "link-local" in info.value.message


# -- URLs ------------------------------------------------------------------------------------

NORMALISED = [
    ("https://partner.example/hooks", "https://partner.example/hooks"),
    ("HTTPS://Partner.EXAMPLE/hooks?x=1#frag", "https://partner.example/hooks?x=1"),
    ("https://partner.example", "https://partner.example/"),
    ("https://partner.example:443/a", "https://partner.example/a"),
    ("https://partner.example:8443/a", "https://partner.example:8443/a"),
    ("  https://partner.example/a  ", "https://partner.example/a"),
    ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
    ("https://8.8.8.8/hook", "https://8.8.8.8/hook"),
    ("https://[2606:4700:4700:0::1111]/hook", "https://[2606:4700:4700::1111]/hook"),
    ("https://api.partner-1.example/v1/orders", "https://api.partner-1.example/v1/orders"),
]


@pytest.mark.parametrize(("url", "expected"), NORMALISED)
def test_check_url_normalises(url: str, expected: str) -> None:
    assert check_url(url, live=True, allow_private=False) == expected


UNSAFE_URLS = [
    "https://127.0.0.1/",
    "https://127.0.0.1./",
    "https://localhost/",
    "https://localhost./",
    "https://LOCALHOST/",
    "https://app.localhost/",
    "https://printer.local/",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://partner.example./",  # trailing dot
    "https://0.0.0.0/",
    "https://[::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[fd00:ec2::254]/",
    "https://[fe80::1%25eth0]/",  # zone id
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/",
    "https://172.16.0.1/",
    "https://192.168.0.1/",
    "https://100.64.0.1/",
    "https://198.18.0.1/",
    "https://224.0.0.1/",
    "https://240.0.0.1/",
    "https://[fc00::1]/",
    "https://[fe80::1]/",
    "https://[2002:7f00:1::1]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    # odd IPv4 spellings
    "https://2130706433/",
    "https://0177.0.0.1/",
    "https://0x7f.1/",
    "https://0x7f000001/",
    "https://127.1/",
    "https://127.0.1/",
    "https://017700000001/",
    "https://8.8.8.08/",  # leading zero even on a public address
    "https://1.2.3.4.5/",
    "https://partner.0x10/",  # numeric last label
    "https://127。0。0。1/",  # ideographic full stops
]


@pytest.mark.parametrize("url", UNSAFE_URLS)
def test_check_url_refuses_unsafe_targets(url: str) -> None:
    with pytest.raises(UnsafeTarget) as info:
        check_url(url, live=True, allow_private=False)
    assert info.value.param == "url"


INVALID_URLS = [
    "",
    "partner.example/hook",
    "ftp://partner.example/",
    "file:///etc/passwd",
    "gopher://partner.example/",
    "javascript:alert(1)",
    "https://",
    "https:///path",
    "https://:443/",
    "https://user:pass@partner.example/",
    "https://user@partner.example/",
    "https://partner.example@127.0.0.1/",
    "https://partner.example:0/",
    "https://partner.example:99999/",
    "https://partner.example:port/",
    "https://part ner.example/",
    "https://partner.example/a b",
    "https://partner.example\\@evil.example/",
    "https://partner.example/\r\nX-Injected: 1",
    "https://[not-ipv6]/",
    "https://under%2Escore.example/",
    "https://-/",
    "https://" + "a" * 2100 + ".example/",
]


@pytest.mark.parametrize("url", INVALID_URLS)
def test_check_url_refuses_malformed_urls(url: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_url(url, live=False, allow_private=False)
    assert info.value.param == "url"


def test_live_requires_https_test_does_not() -> None:
    with pytest.raises(InvalidRequest, match="https"):
        check_url("http://partner.example/hook", live=True, allow_private=False)
    assert (
        check_url("http://partner.example/hook", live=False, allow_private=False)
        == "http://partner.example/hook"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
        ("http://localhost:8080/hook", "http://localhost:8080/hook"),
        ("http://[::1]:8080/hook", "http://[::1]:8080/hook"),
        ("http://10.1.2.3/hook", "http://10.1.2.3/hook"),
    ],
)
def test_allow_private_accepts_local_targets(url: str, expected: str) -> None:
    assert check_url(url, live=False, allow_private=True) == expected


@pytest.mark.parametrize(
    "url", ["http://0x7f.1/", "http://2130706433/", "http://localhost./", "http://0.0.0.0/"]
)
def test_allow_private_still_refuses_tricks(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_url(url, live=False, allow_private=True)


# -- resolution at connect time ----------------------------------------------------------------


class FlippingResolver:
    """DNS that answers a public address first and 127.0.0.1 afterwards (rebinding)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


def dialled(results: list[ResolveResult]) -> list[tuple[str, str, int]]:
    """What aiohttp would connect to: (name kept for TLS/Host, checked IP, port)."""
    return [(r["hostname"], r["host"], r["port"]) for r in results]


@pytest.mark.anyio
async def test_rebinding_is_caught_at_connect_time() -> None:
    resolver = FlippingResolver(["93.184.216.34"], ["127.0.0.1"])
    # Registration-time check sees a public address...
    assert await resolve_safe("rebind.example", 443, allow_private=False, resolver=resolver) == [
        "93.184.216.34"
    ]
    # ...the connect-time lookup sees loopback and gives aiohttp nothing to dial.
    guarded = GuardedResolver(allow_private=False, resolver=resolver)
    with pytest.raises(UnsafeTarget):
        await guarded.resolve("rebind.example", 443)
    assert len(resolver.calls) == 2


@pytest.mark.anyio
async def test_every_resolved_address_is_checked() -> None:
    resolver = FlippingResolver(["93.184.216.34", "10.0.0.7"])
    guarded = GuardedResolver(allow_private=False, resolver=resolver)
    with pytest.raises(UnsafeTarget):
        await guarded.resolve("mixed.example", 443)


@pytest.mark.anyio
async def test_only_checked_ips_are_handed_to_the_connector_with_the_name_kept() -> None:
    resolver = FlippingResolver(["93.184.216.34", "2606:4700:4700::1111"])
    guarded = GuardedResolver(allow_private=False, resolver=resolver)
    results = await guarded.resolve("partner.example", 443)
    assert dialled(results) == [
        ("partner.example", "93.184.216.34", 443),
        ("partner.example", "2606:4700:4700::1111", 443),
    ]
    assert [r["family"] for r in results] == [socket.AF_INET, socket.AF_INET6]
    assert all(r["flags"] & socket.AI_NUMERICHOST for r in results)  # no second lookup
    assert resolver.calls == [("partner.example", 443)]


@pytest.mark.anyio
async def test_every_connection_resolves_again() -> None:
    resolver = FlippingResolver(["93.184.216.34"], ["1.1.1.1"])
    guarded = GuardedResolver(allow_private=False, resolver=resolver)
    first = await guarded.resolve("partner.example", 443)
    second = await guarded.resolve("partner.example", 443)
    assert dialled(first + second) == [
        ("partner.example", "93.184.216.34", 443),
        ("partner.example", "1.1.1.1", 443),
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:10.0.0.1]/hook",
        "https://10.1.2.3:8443/x",
    ],
)
def test_literal_hosts_are_checked_without_dns(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_literal_host(url, allow_private=False)


def test_literal_checks_let_names_and_allowed_literals_through() -> None:
    check_literal_host("https://partner.example/hook", allow_private=False)  # the resolver's job
    check_literal_host("https://93.184.216.34/hook", allow_private=False)
    check_literal_host("http://127.0.0.1:8000/hook", allow_private=True)
    with pytest.raises(UnsafeTarget):
        check_literal_host("http://0.0.0.0/hook", allow_private=True)  # never, even in dev


@pytest.mark.anyio
async def test_name_resolution_failures_are_os_errors_aiohttp_reports_as_connect() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    async def empty(host: str, port: int) -> list[str]:
        return []

    for resolver in (nxdomain, empty):
        with pytest.raises(ResolveError, match="resolve"):
            await resolve_safe("nowhere.example", 443, allow_private=False, resolver=resolver)
    assert issubclass(ResolveError, OSError)
