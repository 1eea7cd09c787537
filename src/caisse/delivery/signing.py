"""Standard Webhooks signatures for partner messages.

Policy (https://www.standardwebhooks.com, spec "Verifying webhook authenticity"):

- signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` over the exact bytes sent;
- each entry is ``v1,`` + base64(HMAC-SHA256(secret, content)); the header holds one entry per
  active secret, space-separated, current secret first, so a partner rotating its verifier
  accepts either key during the grace window;
- secrets are ``whsec_`` + base64 of random bytes (we generate 32, accept 24–64 as the spec says);
- ``webhook-id`` is stable across retries (the partner's idempotency key) while
  ``webhook-timestamp`` is the time of *this* attempt, so every retry is signed afresh.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Sequence

__all__ = ["SECRET_PREFIX", "decode_secret", "headers", "new_secret", "sign"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
_NEW_SECRET_BYTES = 32
_MIN_SECRET_BYTES = 24
_MAX_SECRET_BYTES = 64


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    raw = _secrets.token_bytes(_NEW_SECRET_BYTES)
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """The HMAC key behind a ``whsec_`` secret; refuses anything a verifier could not share."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("webhook secret must start with 'whsec_'")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not valid base64") from None
    if not _MIN_SECRET_BYTES <= len(key) <= _MAX_SECRET_BYTES:
        raise ValueError("webhook secret must decode to 24–64 bytes")
    return key


def _check_parts(msg_id: str, timestamp: int) -> None:
    # A '.' in the id, or a negative/bool timestamp, would make the signed content ambiguous.
    if not msg_id or "." in msg_id or not msg_id.isascii() or any(c.isspace() for c in msg_id):
        raise ValueError("webhook id must be non-empty ASCII without '.' or whitespace")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("webhook timestamp must be a non-negative integer of Unix seconds")


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` value: one ``v1,<b64>`` per secret, in the order given."""
    _check_parts(msg_id, timestamp)
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not one string")
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    content = f"{msg_id}.{timestamp}.".encode("ascii") + body
    entries: list[str] = []
    for secret in secrets:
        mac = hmac.new(decode_secret(secret), content, hashlib.sha256).digest()
        entry = "v1," + base64.b64encode(mac).decode("ascii")
        if entry not in entries:
            entries.append(entry)
    return " ".join(entries)


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt of one message."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, secrets),
    }
