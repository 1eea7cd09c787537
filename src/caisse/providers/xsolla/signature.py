"""Xsolla webhook signature policy.

Xsolla signs a webhook as the lowercase hex ``sha1(raw_body + webhook_secret)`` and sends it as
``Authorization: Signature <40 hex>`` (https://developers.xsolla.com/webhooks/overview/, "Sign
requests"; ``xsolla/xsolla-sdk-php`` ``WebhookAuthenticator``). It is plain SHA-1 with the secret
*appended*, not an HMAC, so the construction must be exactly that one.

Decisions:

- The hash covers the bytes exactly as received. A parsed and re-serialised document hashes to
  something else (key order, spacing, ``\\u`` escapes), so callers pass the raw body.
- The scheme word and the hex digits are compared case-insensitively (Xsolla's own AI kit says to
  lowercase the value first); outer whitespace is ignored, as HTTP strips it anyway. Anything else
  (two spaces, extra text after the digest, 39 or 41 digits, another scheme) is refused.
- Comparison is constant-time (``hmac.compare_digest``); the PHP SDK's ``!==`` is not.
- An empty secret is refused: ``sha1(body)`` alone would let anyone forge a webhook.
- Every failure raises the same :class:`~caisse.errors.SignatureInvalid` with a generic message,
  so an attacker learns nothing about which check failed.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from caisse.errors import SignatureInvalid

SCHEME = "Signature"
_HEADER_RE = re.compile(r"signature ([0-9a-f]{40})", re.ASCII)
_GENERIC = "Invalid Xsolla webhook signature"


def sign(raw_body: bytes, secret: str) -> str:
    """The lowercase hex SHA-1 of ``raw_body + secret``: what Xsolla puts after ``Signature``."""
    if not secret:
        raise ValueError("an Xsolla webhook secret cannot be empty")
    return hashlib.sha1(raw_body + secret.encode("utf-8"), usedforsecurity=False).hexdigest()


def authorization_header(raw_body: bytes, secret: str) -> str:
    """The full ``Authorization`` header value Xsolla sends with ``raw_body``."""
    return f"{SCHEME} {sign(raw_body, secret)}"


def verify(raw_body: bytes, authorization: str | None, secret: str) -> None:
    """Check an ``Authorization`` header against the raw body; raise ``SignatureInvalid`` if not."""
    if not secret or not authorization or not authorization.isascii():
        raise SignatureInvalid(_GENERIC)
    match = _HEADER_RE.fullmatch(authorization.strip().lower())
    if match is None:
        raise SignatureInvalid(_GENERIC)
    expected = sign(raw_body, secret).encode("ascii")
    if not hmac.compare_digest(expected, match.group(1).encode("ascii")):
        raise SignatureInvalid(_GENERIC)
