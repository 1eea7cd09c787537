"""Secrets at rest (Fernet under the master key, with rotation), masking, tenant API keys."""

from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.fernet import Fernet

from caisse.config import Secret
from caisse.crypto import SecretBox, hash_api_key, mask, new_api_key
from caisse.errors import CaisseError


def key() -> Secret:
    return Secret(Fernet.generate_key().decode())


def test_round_trip_and_ciphertext_hides_the_plaintext() -> None:
    box = SecretBox([key()])
    plain = "sk_test_51HxYzAbCdEf0123456789é"
    token = box.encrypt(plain)
    assert plain not in token
    assert token.isascii()
    assert box.decrypt(token) == plain
    assert box.encrypt(plain) != token  # a fresh IV each time


def test_rotation_new_key_first_still_decrypts_with_the_old_key() -> None:
    old, new = key(), key()
    stored = SecretBox([old]).encrypt("whsec_rotated")
    rotated = SecretBox([new, old])
    assert rotated.decrypt(stored) == "whsec_rotated"
    fresh = rotated.encrypt("whsec_fresh")
    assert SecretBox([new]).decrypt(fresh) == "whsec_fresh"  # the first key encrypts
    with pytest.raises(CaisseError):
        SecretBox([old]).decrypt(fresh)


def test_wrong_key_is_a_caisse_error_that_leaks_nothing() -> None:
    right, wrong = key(), key()
    token = SecretBox([right]).encrypt("sk_live_topsecretvalue")
    with pytest.raises(CaisseError) as info:
        SecretBox([wrong]).decrypt(token)
    text = str(info.value) + repr(info.value)
    for leaked in ("sk_live_topsecretvalue", right.reveal(), wrong.reveal(), token):
        assert leaked not in text


@pytest.mark.parametrize("token", ["", "not-a-token", "gAAAAAB" + "A" * 40])
def test_garbage_ciphertext_is_a_caisse_error(token: str) -> None:
    with pytest.raises(CaisseError):
        SecretBox([key()]).decrypt(token)


@pytest.mark.parametrize("bad", ["", "short", "x" * 44])
def test_invalid_or_missing_master_key_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(CaisseError) as info:
        SecretBox([Secret(bad)] if bad else [])
    if bad:
        assert bad not in info.value.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sk_test_abcdefghijklmnop", "sk_test_••••••••mnop"),
        ("sk_live_abcdefghijklmnop", "sk_live_••••••••mnop"),
        ("rk_test_abcdefghijklmnop", "rk_test_••••••••mnop"),
        ("whsec_abcdefghijklmnopqrst", "whsec_••••••••qrst"),
        ("pk_live_abcdefghijklmnop", "pk_live_••••••••mnop"),
        ("ck_test_abcdefghijklmnop", "ck_test_••••••••mnop"),
        ("whsec_abc", "whsec_••••••••"),  # too short to show any tail
        ("sk_test_abcdefgh", "sk_test_••••••••"),
        ("opaque-partner-key-1234", "••••••••1234"),
        ("", "••••••••"),
    ],
)
def test_mask_forms(value: str, expected: str) -> None:
    assert mask(value) == expected


def test_mask_keeps_none_and_never_shows_half_the_secret() -> None:
    assert mask(None) is None
    for n in range(30):
        value = "sk_test_" + "s" * n
        shown = mask(value)
        assert shown is not None
        assert len(shown.replace("•", "")) - len("sk_test_") <= n // 2


@pytest.mark.parametrize("env", ["test", "live"])
def test_api_key_format_and_hash(env: str) -> None:
    k = new_api_key(env)
    assert re.fullmatch(rf"ck_{env}_[A-Za-z0-9_-]{{43}}", k)
    assert new_api_key(env) != k
    digest = hash_api_key(k)
    assert digest == hashlib.sha256(k.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert k not in digest
