"""Pure rules of the player flow: return-URL allow-list, client IP, player-facing status."""

from __future__ import annotations

import pytest

from caisse.web.client_ip import client_ip, parse_networks
from caisse.xsolla.policy import player_status, return_url_allowed

ALLOW = ("https://game.example/pay", "mygame://payment", "https://shop.example:8443/")


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://game.example/pay", True),
        ("https://game.example/pay/done?x=1#y", True),
        ("https://GAME.example/pay/done", True),
        ("https://game.example/payback", False),
        ("https://game.example/", False),
        ("http://game.example/pay", False),
        ("https://game.example.evil.test/pay", False),
        ("https://user@game.example/pay", False),
        ("https://game.example:444/pay", False),
        ("mygame://payment/ok", True),
        ("mygame://other", False),
        ("https://shop.example:8443/anything", True),
        ("https://shop.example/anything", False),
        ("javascript:alert(1)", False),
        ("https://game.example/pay/\r\nx", False),
        ("https://game.example:99999/pay", False),
    ],
)
def test_return_url_allow_list(url: str, ok: bool) -> None:
    assert return_url_allowed(url, ALLOW) is ok


def test_empty_allow_list_allows_nothing() -> None:
    assert not return_url_allowed("https://game.example/pay", ())


TRUSTED = parse_networks(["10.0.0.0/8", "192.0.2.1", "not-an-ip", "*"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.7", "203.0.113.9"),  # untrusted peer: header ignored
        ("10.1.2.3", "198.51.100.7", "198.51.100.7"),
        ("10.1.2.3", "6.6.6.6, 198.51.100.7, 10.9.9.9", "198.51.100.7"),  # rightmost untrusted
        ("192.0.2.1", "10.0.0.1, 10.0.0.2", "192.0.2.1"),  # only proxies: the peer
        ("10.1.2.3", "garbage", None),
        ("testclient", None, None),
        (None, "198.51.100.7", None),
        ("10.1.2.3", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_trusts_forwarded_for_only_from_trusted_proxies(
    peer: str | None, forwarded: str | None, expected: str | None
) -> None:
    assert client_ip(peer, forwarded, TRUSTED) == expected


@pytest.mark.parametrize(
    ("order_status", "entitlements", "expected"),
    [
        ("open", [], "new"),
        ("processing", [], "new"),
        ("paid", [], "paid"),
        ("paid", ["granted"], "done"),
        ("refunded", ["revoked"], "canceled"),
        ("paid", ["revoked"], "canceled"),
        ("canceled", [], "canceled"),
    ],
)
def test_player_status(order_status: str, entitlements: list[str], expected: str) -> None:
    assert player_status(order_status, entitlements) == expected
