"""The buyer's IP address, for Xsolla's ``X-User-Ip`` (it picks the currency and methods).

``X-Forwarded-For`` is believed only from a peer listed in ``CAISSE_TRUSTED_PROXIES`` (addresses
or CIDR networks): walking the header from the right, the first address that is not a trusted
proxy is the client. From any other peer the header is ignored, so a player cannot choose the
country Xsolla sees. (``caisse serve`` also gives uvicorn the same list; once uvicorn has
rewritten the peer, the peer is the client and this finds it unchanged.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    out: list[Network] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue  # "*" and host names are uvicorn's business, not ours
    return tuple(out)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The client address: the peer, or, behind trusted proxies, the first untrusted hop."""
    if peer is None or not _trusted(peer, trusted) or not forwarded_for:
        return _valid(peer)
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if not _valid(hop):
            return None
        if not _trusted(hop, trusted):
            return hop
    return _valid(peer)


def _valid(address: str | None) -> str | None:
    if address is None:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
