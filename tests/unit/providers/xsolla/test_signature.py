"""Xsolla webhook signatures: sha1(raw body + secret), hex, in ``Authorization: Signature``.

Vectors are computed here from the documented rule (research §3.4: the docs publish no secret).
Cases W1–W7 of research/xsolla-firebase.md §6.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from caisse.errors import SignatureInvalid
from caisse.providers.xsolla.signature import authorization_header, sign, verify

SECRET = "PROJECT_SECRET_KEY"  # the secret of xsolla-sdk-php's integration tests
SPACED = (
    b'{\n    "notification_type": "user_validation",\n    "settings": {\n        "project_id": '
    b'18404,\n        "merchant_id": 2340\n    },\n    "user": {\n        "ip": "127.0.0.1",\n'
    b'        "email": "email@example.com",\n        "id": "1234567",\n        "name": '
    b'"Xsolla User",\n        "country": "US"\n    }\n}'
)
UTF8 = '{"notification_type":"user_validation","user":{"id":"42","name":"Zoë Ñandú 東京"}}'.encode()


def test_sign_is_sha1_of_body_then_secret() -> None:
    body = b'{"notification_type":"user_validation"}'
    expected = hashlib.sha1(body + SECRET.encode()).hexdigest()
    assert sign(body, SECRET) == expected
    assert len(expected) == 40
    assert expected == expected.lower()
    assert authorization_header(body, SECRET) == f"Signature {expected}"


def test_known_vector() -> None:
    # Computed once with `printf '%s' '{"a":1}secret' | sha1sum`.
    assert sign(b'{"a":1}', "secret") == hashlib.sha1(b'{"a":1}secret').hexdigest()
    assert sign(b"", "k") == hashlib.sha1(b"k").hexdigest()


def test_valid_signature_passes() -> None:  # W1
    verify(SPACED, authorization_header(SPACED, SECRET), SECRET)


def test_signature_covers_raw_bytes_not_the_reserialised_document() -> None:  # W4
    compact = json.dumps(json.loads(SPACED), separators=(",", ":")).encode()
    header = authorization_header(SPACED, SECRET)
    assert sign(compact, SECRET) != sign(SPACED, SECRET)
    verify(SPACED, header, SECRET)
    with pytest.raises(SignatureInvalid):
        verify(compact, header, SECRET)


def test_key_order_and_trailing_newline_matter() -> None:
    body = b'{"a":1,"b":2}'
    header = authorization_header(body, SECRET)
    for variant in (b'{"b":2,"a":1}', body + b"\n", b" " + body):
        with pytest.raises(SignatureInvalid):
            verify(variant, header, SECRET)


def test_utf8_body_is_hashed_as_received() -> None:  # W5
    verify(UTF8, authorization_header(UTF8, SECRET), SECRET)
    escaped = json.dumps(json.loads(UTF8), separators=(",", ":"), ensure_ascii=True).encode()
    assert escaped != UTF8
    with pytest.raises(SignatureInvalid):
        verify(escaped, authorization_header(UTF8, SECRET), SECRET)


def test_non_ascii_secret_is_utf8_encoded() -> None:
    secret = "clé-secrète"
    body = b'{"x":1}'
    assert sign(body, secret) == hashlib.sha1(body + secret.encode("utf-8")).hexdigest()
    verify(body, authorization_header(body, secret), secret)


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param(hashlib.sha1(SECRET.encode() + SPACED).hexdigest(), id="secret-first"),
        pytest.param(hmac.new(SECRET.encode(), SPACED, hashlib.sha1).hexdigest(), id="hmac-sha1"),
        pytest.param(
            hmac.new(SECRET.encode(), SPACED, hashlib.sha256).hexdigest()[:40], id="hmac-sha256"
        ),
        pytest.param(hashlib.sha1(SPACED).hexdigest(), id="no-secret"),
        pytest.param(
            hashlib.sha256(SPACED + SECRET.encode()).hexdigest()[:40], id="sha256-truncated"
        ),
        pytest.param(hashlib.sha1(SPACED + b"other-secret").hexdigest(), id="other-secret"),
    ],
)
def test_wrong_constructions_fail(digest: str) -> None:  # W6
    with pytest.raises(SignatureInvalid):
        verify(SPACED, f"Signature {digest}", SECRET)


def test_near_miss_fails() -> None:  # W2
    good = sign(SPACED, SECRET)
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(SignatureInvalid):
        verify(SPACED, f"Signature {flipped}", SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "INVALID_FORMAT",
        "Signature",
        "Signature ",
        "Bearer {sig}",
        "Basic {sig}",
        "{sig}",
        "Signature  {sig}",  # two spaces
        "Signature\t{sig}",
        "Signature={sig}",
        "Signature {sig} extra",
        "Signature {sig},Signature {sig}",
        "Signature {sig39}",
        "Signature {sig}0",
        "Signature {nonhex}",
        "Signature {sig_unicode}",
    ],
)
def test_missing_or_garbled_header_fails(header: str | None) -> None:  # W3, W7
    sig = sign(SPACED, SECRET)
    if header is not None:
        header = header.format(
            sig=sig, sig39=sig[:39], nonhex="g" * 40, sig_unicode=sig[:-1] + "\u0660"
        )
    with pytest.raises(SignatureInvalid):
        verify(SPACED, header, SECRET)


@pytest.mark.parametrize(
    "header",
    ["signature {sig}", "SIGNATURE {sig}", "Signature {upper}", "  Signature {sig}  "],
)
def test_case_and_outer_whitespace_are_normalised(header: str) -> None:  # W7 (a decision)
    sig = sign(SPACED, SECRET)
    verify(SPACED, header.format(sig=sig, upper=sig.upper()), SECRET)


def test_empty_secret_is_refused() -> None:
    forged = hashlib.sha1(SPACED).hexdigest()  # what sha1(body + "") would give
    with pytest.raises(SignatureInvalid):
        verify(SPACED, f"Signature {forged}", "")
    with pytest.raises(ValueError, match="empty"):
        sign(SPACED, "")


def test_failures_share_one_generic_message() -> None:
    messages = set()
    for header in (None, "garbage", f"Signature {'0' * 40}"):
        with pytest.raises(SignatureInvalid) as info:
            verify(SPACED, header, SECRET)
        messages.add(str(info.value))
    assert len(messages) == 1
    assert SECRET not in messages.pop()
