"""Pure rules of the player flow, kept apart so they are tested without a database."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from caisse.errors import InvalidRequest

ENVIRONMENTS = ("test", "live")
DEFAULT_MODE = "live"
MAX_QUANTITY = 100
CANCELED_ORDER_STATUSES = frozenset({"canceled", "refunded", "partially_refunded", "failed"})


def check_firebase_project(project_id: str, environment: str) -> None:
    """A live account never names a ``demo-*`` Firebase project: those are the emulator's demo
    projects (no real users, and the only ones whose unsigned tokens emulator mode accepts)."""
    if environment == "live" and project_id.startswith("demo-"):
        raise InvalidRequest(
            "demo-* Firebase projects are for the emulator and the test environment only",
            param="firebase_project_id",
        )


def return_url_allowed(url: str, allowlist: Iterable[str]) -> bool:
    """Whether ``url`` falls under an allow-list entry: same scheme and host (and port), and
    the entry's path as a whole-segment prefix. No credentials in the URL, ever.

    ``https://game.example/pay`` allows ``https://game.example/pay/done?x=1`` but neither
    ``https://game.example/payback`` nor ``https://game.example.evil.test/pay``.
    """
    if len(url) > 1000 or any(c in url for c in "\r\n\t \\"):
        return False
    try:
        target = urlsplit(url)
        port = target.port
    except ValueError:
        return False
    if not target.scheme or not target.netloc or "@" in target.netloc:
        return False
    for entry in allowlist:
        allowed = urlsplit(entry)
        try:
            allowed_port = allowed.port
        except ValueError:
            continue
        if target.scheme.lower() != allowed.scheme.lower():
            continue
        if (target.hostname or "") != (allowed.hostname or "") or port != allowed_port:
            continue
        prefix = allowed.path.rstrip("/")
        path = target.path or "/"
        if not prefix or path == prefix or path.startswith(prefix + "/"):
            return True
    return False


def player_status(order_status: str, entitlement_statuses: Iterable[str]) -> str:
    """Xsolla's order vocabulary for the game client: ``new``, ``paid``, ``done`` (items
    granted), ``canceled`` (cancelled, refunded, or items revoked) — what Xsolla's own SDK
    waits for (``done``) and stops on (``canceled``)."""
    statuses = list(entitlement_statuses)
    if order_status in CANCELED_ORDER_STATUSES or "revoked" in statuses:
        return "canceled"
    if statuses:
        return "done"
    if order_status == "paid":
        return "paid"
    return "new"
