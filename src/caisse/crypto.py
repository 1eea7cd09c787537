"""Secrets at rest and tenant API keys.

Provider secret keys, webhook secrets and partner API keys are encrypted with Fernet
(AES-128-CBC + HMAC-SHA256) under the master key; ``MultiFernet`` lets an operator rotate the
master key by prepending a new one. Tenant API keys are random 256-bit tokens, so a single
SHA-256 is a sufficient one-way hash (no password stretching needed) and lets the key be looked
up by its hash in one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from caisse.config import Secret
from caisse.errors import CaisseError


class SecretBox:
    def __init__(self, master_keys: Sequence[Secret]) -> None:
        if not master_keys:
            raise CaisseError("No master key configured")
        try:
            self._fernet = MultiFernet([Fernet(k.reveal().encode()) for k in master_keys])
        except (ValueError, TypeError) as exc:
            raise CaisseError("CAISSE_MASTER_KEY is not a valid Fernet key") from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise CaisseError("A stored secret cannot be decrypted with the master key") from exc


def mask(value: str | None, *, keep: int = 4) -> str | None:
    """``sk_test_••••••••abcd``: the prefix (which says what it is) and the last characters."""
    if value is None:
        return None
    prefix = ""
    for candidate in (
        "sk_test_",
        "sk_live_",
        "rk_test_",
        "rk_live_",
        "whsec_",
        "pk_test_",
        "pk_live_",
        "ck_test_",
        "ck_live_",
    ):
        if value.startswith(candidate):
            prefix = candidate
            break
    tail = value[-keep:] if len(value) - len(prefix) > keep * 2 else ""
    return f"{prefix}{'•' * 8}{tail}"


def new_api_key(environment: str) -> str:
    return f"ck_{environment}_{secrets.token_urlsafe(32)}"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
