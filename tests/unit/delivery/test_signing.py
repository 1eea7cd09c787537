"""Standard Webhooks signing: spec vectors bit for bit, and the reference verifier agrees."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from caisse.delivery import signing

# research/outbound-webhooks.md §c, vectors V1, V2 and the derived rotation vector V4.
V1 = (
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "msg_p5jXN8AQM9LWM0D4loKWxJek",
    1614265330,
    b'{"test": 2432232314}',
    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
)
V2 = (
    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
    1649367553,
    b'{"email":"test@example.com","username":"test_user"}',
    "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
)
V4 = "v1,78nXHjpFP0tVJQW5D0SBwmVyyW87BV/rL6MgfM/Bw44="


@pytest.mark.parametrize("vector", [V1, V2], ids=["V1", "V2"])
def test_spec_vectors(vector: tuple[str, str, int, bytes, str]) -> None:
    secret, msg_id, timestamp, body, expected = vector
    assert signing.sign(msg_id, timestamp, body, [secret]) == expected


def test_rotation_signs_with_every_secret_current_first() -> None:
    secret1, msg_id, timestamp, body, expected1 = V1
    secret2 = V2[0]
    assert signing.sign(msg_id, timestamp, body, [secret1, secret2]) == f"{expected1} {V4}"
    assert signing.sign(msg_id, timestamp, body, [secret2, secret1]) == f"{V4} {expected1}"


def test_duplicate_secrets_sign_once() -> None:
    secret, msg_id, timestamp, body, expected = V1
    assert signing.sign(msg_id, timestamp, body, [secret, secret]) == expected


def test_one_changed_body_byte_changes_the_signature() -> None:
    secret, msg_id, timestamp, body, expected = V1
    assert signing.sign(msg_id, timestamp, body.replace(b" ", b""), [secret]) != expected


def test_headers_carry_the_three_standard_webhooks_fields() -> None:
    secret, msg_id, timestamp, body, expected = V1
    assert signing.headers(msg_id, timestamp, body, [secret]) == {
        "webhook-id": msg_id,
        "webhook-timestamp": "1614265330",
        "webhook-signature": expected,
    }


def test_reference_library_verifies_our_headers() -> None:
    secret = signing.new_secret()
    body = b'{"type": "order.paid", "data": {"id": "ord_1", "amount": 4200, "note": "caf\xc3\xa9"}}'
    now = int(time.time())
    headers = signing.headers("msg_abc", now, body, [secret])
    assert Webhook(secret).verify(body, headers) == {
        "type": "order.paid",
        "data": {"id": "ord_1", "amount": 4200, "note": "café"},
    }


def test_reference_library_accepts_either_key_during_rotation() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    body = b'{"type": "order.refunded"}'
    headers = signing.headers("msg_rot", int(time.time()), body, [new, old])
    for secret in (old, new):
        Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_reference_library_rejects_a_tampered_body() -> None:
    secret = signing.new_secret()
    headers = signing.headers("msg_t", int(time.time()), b'{"amount": 1}', [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"amount": 2}', headers)


def test_reference_library_signs_like_us() -> None:
    import datetime as dt

    secret, msg_id, timestamp, body, expected = V1
    theirs = Webhook(secret).sign(
        msg_id, dt.datetime.fromtimestamp(timestamp, dt.UTC), body.decode()
    )
    assert theirs == expected


def test_new_secret_format_and_uniqueness() -> None:
    secrets = {signing.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
        assert signing.decode_secret(secret)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_not base64!!",
        "whsec_" + base64.b64encode(b"x" * 16).decode(),  # too short
        "whsec_" + base64.b64encode(b"x" * 65).decode(),  # too long
    ],
)
def test_bad_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        signing.sign("msg_1", 1, b"{}", [secret])


@pytest.mark.parametrize("msg_id", ["", "msg.1", "msg 1", "msg_é"])
def test_ids_that_would_make_the_content_ambiguous_are_refused(msg_id: str) -> None:
    with pytest.raises(ValueError, match="webhook id"):
        signing.sign(msg_id, 1, b"{}", [V1[0]])


@pytest.mark.parametrize("timestamp", [-1, True, 1.5])
def test_bad_timestamps_are_refused(timestamp: int) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        signing.sign("msg_1", timestamp, b"{}", [V1[0]])


def test_no_secret_or_a_bare_string_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        signing.sign("msg_1", 1, b"{}", [])
    with pytest.raises(TypeError):
        signing.sign("msg_1", 1, b"{}", V1[0])
