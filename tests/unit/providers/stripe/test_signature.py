"""The Stripe signature policy, case by case (research/stripe-consumers.md §(c), numbered cases).

Cases 16, 20-23, 26-31 and 33-34's HTTP side are about the web, intake and storage layers; here
they appear only where verification itself has something to pin.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import stripe

from caisse.errors import InvalidRequest, SignatureInvalid
from caisse.providers.stripe.signature import (
    GENERIC_MESSAGE,
    MAX_HEADER_LENGTH,
    MAX_SECRETS,
    MAX_V1_SIGNATURES,
    Reason,
    StripeSignatureInvalid,
    check_window,
    normalize_secret,
    normalize_secrets,
    sign,
    verify,
)

NOW = 1_750_000_000
SECRET = "whsec_current0123456789abcdefABCDEF"
PREVIOUS = "whsec_previous0123456789abcdefABCDE"
OTHER = "whsec_otherTenant0123456789abcdefAB"
BODY = json.dumps(
    {"id": "evt_1", "object": "event", "type": "payment_intent.succeeded"}, indent=2
).encode()


def v1(payload: bytes, secret: str, timestamp: int = NOW) -> str:
    return hmac.new(secret.encode(), b"%d." % timestamp + payload, hashlib.sha256).hexdigest()


def rejected(
    payload: bytes,
    header: str | None,
    secrets: list[str] | None = None,
    **kwargs: int,
) -> Reason:
    with pytest.raises(StripeSignatureInvalid) as info:
        verify(payload, header, [SECRET] if secrets is None else secrets, now=NOW, **kwargs)
    return info.value.reason


def accepted(payload: bytes, header: str | None, secrets: list[str] | None = None) -> None:
    verify(payload, header, [SECRET] if secrets is None else secrets, now=NOW)


# 1 ------------------------------------------------------------------------------------------------
def test_01_valid_header_fresh_timestamp_current_secret() -> None:
    accepted(BODY, sign(BODY, [SECRET], timestamp=NOW))


# 2 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stored", [SECRET + "\n", SECRET + " ", "  " + SECRET + "\r\n", "\t" + SECRET]
)
def test_02_secret_pasted_with_whitespace_is_normalised(stored: str) -> None:
    assert normalize_secret(stored) == SECRET
    accepted(BODY, sign(BODY, [SECRET], timestamp=NOW), [stored])


# 3 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tampered",
    [
        BODY.replace(b"evt_1", b"evt_2"),  # one byte
        BODY.replace(b": ", b":  ", 1),  # whitespace
        json.dumps(
            {"type": "payment_intent.succeeded", "id": "evt_1", "object": "event"}, indent=2
        ).encode(),  # key order
        BODY + b"\n",  # trailing newline
        BODY[:-1],  # truncated
    ],
    ids=["one-byte", "whitespace", "key-order", "trailing-newline", "truncated"],
)
def test_03_tampered_body_rejected(tampered: bytes) -> None:
    header = sign(BODY, [SECRET], timestamp=NOW)
    assert rejected(tampered, header) is Reason.NO_MATCHING_SIGNATURE


# 4 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reserialize",
    [
        lambda d: json.dumps(d).encode(),
        lambda d: json.dumps(d, separators=(",", ":")).encode(),
        lambda d: json.dumps(d, indent=2, sort_keys=True).encode(),
        lambda d: json.dumps(d, indent=2, ensure_ascii=True).encode(),
    ],
    ids=["compact", "minified", "sorted", "ascii-escaped"],
)
def test_04_reserialized_body_rejected_raw_bytes_are_signed(reserialize: object) -> None:
    original = json.dumps({"id": "evt_1", "name": "Hôtel ✓", "a": 1}, indent=2, ensure_ascii=False)
    raw = original.encode()
    header = sign(raw, [SECRET], timestamp=NOW)
    again = reserialize(json.loads(raw))  # type: ignore[operator]
    assert again != raw
    assert rejected(again, header) is Reason.NO_MATCHING_SIGNATURE


# 5 ------------------------------------------------------------------------------------------------
def test_05_exactly_at_tolerance_is_accepted() -> None:
    accepted(BODY, sign(BODY, [SECRET], timestamp=NOW - 300))


def test_05_one_second_past_tolerance_is_rejected() -> None:
    header = sign(BODY, [SECRET], timestamp=NOW - 301)
    assert rejected(BODY, header) is Reason.TIMESTAMP_TOO_OLD


def test_05_custom_tolerance_boundary() -> None:
    verify(BODY, sign(BODY, [SECRET], timestamp=NOW - 60), [SECRET], now=NOW, tolerance=60)
    header = sign(BODY, [SECRET], timestamp=NOW - 61)
    assert rejected(BODY, header, tolerance=60) is Reason.TIMESTAMP_TOO_OLD


def test_05_old_timestamp_with_wrong_secret_reports_the_secret() -> None:
    # Signature is checked before age, so logs name the most likely culprit (a wrong secret).
    header = sign(BODY, [OTHER], timestamp=NOW - 3600)
    assert rejected(BODY, header) is Reason.NO_MATCHING_SIGNATURE


# 6 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ahead", [1, 30, 300])
def test_06_small_future_skew_accepted(ahead: int) -> None:
    accepted(BODY, sign(BODY, [SECRET], timestamp=NOW + ahead))


@pytest.mark.parametrize("ahead", [301, 3600, 10**9])
def test_06_large_future_skew_rejected(ahead: int) -> None:
    header = sign(BODY, [SECRET], timestamp=NOW + ahead)
    assert rejected(BODY, header) is Reason.TIMESTAMP_IN_FUTURE


def test_06_future_skew_is_configurable_and_zero_means_none() -> None:
    header = sign(BODY, [SECRET], timestamp=NOW + 1)
    assert rejected(BODY, header, future_skew=0) is Reason.TIMESTAMP_IN_FUTURE
    verify(BODY, sign(BODY, [SECRET], timestamp=NOW), [SECRET], now=NOW, future_skew=0)


def test_06_stripe_sdk_accepts_the_future_but_caisse_does_not() -> None:
    header = sign(BODY, [SECRET], timestamp=int(time.time()) + 3600)
    stripe.WebhookSignature.verify_header(BODY, header, SECRET, tolerance=300)
    with pytest.raises(SignatureInvalid):
        verify(BODY, header, [SECRET], now=int(time.time()))


# 7 ------------------------------------------------------------------------------------------------
BAD_TIMESTAMPS = {
    "empty": "",
    "word": "abc",
    "float": "1750000000.0",
    "exponent": "1.75e9",
    "negative": "-1750000000",
    "plus": "+1750000000",
    "leading-zero": "01750000000",
    "underscores": "1_750_000_000",
    "hex": "0x6850",
    "13-digits": "9" * 13,
    "overflow": "9" * 400,
    "junk": " 1750000000x",
    "fullwidth-digits": "１７５０",
}


@pytest.mark.parametrize("t", BAD_TIMESTAMPS.values(), ids=BAD_TIMESTAMPS.keys())
def test_07_non_integer_timestamp_rejected_without_crash(t: str) -> None:
    header = f"t={t},v1={v1(BODY, SECRET)}"
    reason = rejected(BODY, header)
    assert reason in {Reason.TIMESTAMP_INVALID, Reason.HEADER_NOT_ASCII}


def test_07_missing_timestamp_rejected() -> None:
    assert rejected(BODY, f"v1={v1(BODY, SECRET)}") is Reason.TIMESTAMP_MISSING


def test_07_zero_is_a_valid_integer_but_far_too_old() -> None:
    header = f"t=0,v1={v1(BODY, SECRET, 0)}"
    assert rejected(BODY, header) is Reason.TIMESTAMP_TOO_OLD


def test_07_twelve_digit_timestamp_is_parsed_then_refused_as_future() -> None:
    t = 10**11
    assert rejected(BODY, f"t={t},v1={v1(BODY, SECRET, t)}") is Reason.TIMESTAMP_IN_FUTURE


# 8 ------------------------------------------------------------------------------------------------
def test_08_two_different_timestamps_rejected() -> None:
    header = f"t={NOW},v1={v1(BODY, SECRET)},t={NOW - 1}"
    assert rejected(BODY, header) is Reason.TIMESTAMP_AMBIGUOUS


def test_08_the_sdk_would_take_the_first_timestamp() -> None:
    # What caisse refuses above, stripe-python accepts: it reads the first t only.
    header = f"t={int(time.time())},v1={v1(BODY, SECRET, int(time.time()))},t=1"
    stripe.WebhookSignature.verify_header(BODY, header, SECRET, tolerance=300)


def test_08_same_timestamp_repeated_is_tolerated() -> None:
    accepted(BODY, f"t={NOW},v1={v1(BODY, SECRET)},t={NOW}")


# 9 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "", " ", "\t"])
def test_09_missing_or_empty_header(header: str | None) -> None:
    assert rejected(BODY, header) is Reason.HEADER_MISSING


def test_09_header_with_only_t() -> None:
    assert rejected(BODY, f"t={NOW}") is Reason.NO_V1_SIGNATURE


# 10 -----------------------------------------------------------------------------------------------
def test_10_only_v0_is_a_downgrade_and_rejected() -> None:
    header = f"t={NOW},v0={v1(BODY, SECRET)}"  # even a *correct* HMAC under v0 does not count
    assert rejected(BODY, header) is Reason.NO_V1_SIGNATURE


def test_10_unknown_schemes_do_not_count() -> None:
    header = f"t={NOW},v2={v1(BODY, SECRET)},V1={v1(BODY, SECRET)}"
    assert rejected(BODY, header) is Reason.NO_V1_SIGNATURE


# 11 -----------------------------------------------------------------------------------------------
def test_11_v1_plus_v0_test_mode_header_accepted() -> None:
    header = sign(BODY, [SECRET], timestamp=NOW, include_v0=True)
    assert header.split(",")[-1].startswith("v0=")
    accepted(BODY, header)


def test_11_v0_first_then_v1_accepted() -> None:
    accepted(BODY, f"t={NOW},v0={'0' * 64},v1={v1(BODY, SECRET)}")


# 12 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["wrong-right", "right-wrong"])
def test_12_any_matching_v1_passes_in_any_order(order: str) -> None:
    sigs = [v1(BODY, OTHER), v1(BODY, SECRET)]
    if order == "right-wrong":
        sigs.reverse()
    accepted(BODY, f"t={NOW},v1={sigs[0]},v1={sigs[1]}")


def test_12_rolling_header_one_v1_per_secret() -> None:
    header = sign(BODY, [SECRET, PREVIOUS], timestamp=NOW)
    assert header.count("v1=") == 2
    accepted(BODY, header, [SECRET])
    accepted(BODY, header, [PREVIOUS])


# 13 -----------------------------------------------------------------------------------------------
def test_13_thousand_v1_rejected_before_any_hmac() -> None:
    header = f"t={NOW}," + ",".join([f"v1={'a' * 64}"] * 1000) + f",v1={v1(BODY, SECRET)}"
    assert rejected(BODY, header) in {Reason.HEADER_TOO_LARGE, Reason.TOO_MANY_ELEMENTS}


def test_13_header_over_8_kib_rejected() -> None:
    header = sign(BODY, [SECRET], timestamp=NOW) + ",x=" + "y" * MAX_HEADER_LENGTH
    assert rejected(BODY, header) is Reason.HEADER_TOO_LARGE


def test_13_too_many_elements_rejected() -> None:
    header = f"t={NOW},v1={v1(BODY, SECRET)}" + ",x=1" * 63
    assert rejected(BODY, header) is Reason.TOO_MANY_ELEMENTS


def test_13_v1_cap_boundary() -> None:
    fillers = [f"v1={'a' * 64}"] * (MAX_V1_SIGNATURES - 1)
    at_cap = ",".join([f"t={NOW}", *fillers, f"v1={v1(BODY, SECRET)}"])
    accepted(BODY, at_cap)
    over = ",".join([f"t={NOW}", *fillers, f"v1={'b' * 64}", f"v1={v1(BODY, SECRET)}"])
    assert rejected(BODY, over) is Reason.TOO_MANY_SIGNATURES


# 14 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mangle",
    [str.upper, lambda s: s[:-1], lambda s: s + "0", lambda s: "z" * 64, lambda s: ""],
    ids=["uppercase", "short", "long", "non-hex", "empty"],
)
def test_14_malformed_v1_values_rejected_without_exception(mangle: object) -> None:
    header = f"t={NOW},v1={mangle(v1(BODY, SECRET))}"  # type: ignore[operator]
    assert rejected(BODY, header) is Reason.NO_MATCHING_SIGNATURE


def test_14_non_ascii_header_rejected_without_exception() -> None:
    header = f"t={NOW},v1={v1(BODY, SECRET)[:-1]}é"
    assert rejected(BODY, header) is Reason.HEADER_NOT_ASCII


# 15 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [
        f"t={NOW},v1,v1={v1(BODY, SECRET)}",
        f"t={NOW},,v1={v1(BODY, SECRET)}",
        f"t={NOW},v1={v1(BODY, SECRET)},",
        f",t={NOW},v1={v1(BODY, SECRET)}",
        f"t={NOW},={v1(BODY, SECRET)},v1={v1(BODY, SECRET)}",
    ],
    ids=["no-equals", "empty-middle", "trailing-comma", "leading-comma", "empty-key"],
)
def test_15_malformed_elements_rejected(header: str) -> None:
    assert rejected(BODY, header) is Reason.MALFORMED_ELEMENT


@pytest.mark.parametrize(
    "header",
    [
        f"t={NOW}, v1={v1(BODY, SECRET)}",
        f" t={NOW} ,\tv1={v1(BODY, SECRET)} ",
    ],
    ids=["space-after-comma", "spaces-and-tabs"],
)
def test_15_whitespace_around_elements_tolerated(header: str) -> None:
    accepted(BODY, header)


def test_15_value_containing_equals_is_kept_whole() -> None:
    header = f"t={NOW},v1={v1(BODY, SECRET)},x=a=b"
    accepted(BODY, header)


# 17 -----------------------------------------------------------------------------------------------
def test_17_proxy_joined_duplicate_of_one_delivery_accepted() -> None:
    line = sign(BODY, [SECRET], timestamp=NOW)
    accepted(BODY, f"{line}, {line}")


def test_17_proxy_joined_lines_with_different_timestamps_rejected() -> None:
    joined = f"{sign(BODY, [SECRET], timestamp=NOW)}, {sign(BODY, [SECRET], timestamp=NOW - 5)}"
    assert rejected(BODY, joined) is Reason.TIMESTAMP_AMBIGUOUS


# 18 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("signer", [SECRET, PREVIOUS])
def test_18_rotation_either_active_secret_passes(signer: str) -> None:
    accepted(BODY, sign(BODY, [signer], timestamp=NOW), [SECRET, PREVIOUS])


def test_18_after_previous_secret_expires_it_is_rejected() -> None:
    header = sign(BODY, [PREVIOUS], timestamp=NOW)
    assert rejected(BODY, header, [SECRET]) is Reason.NO_MATCHING_SIGNATURE


# 19 -----------------------------------------------------------------------------------------------
def test_19_other_tenants_secret_rejected() -> None:
    header = sign(BODY, [OTHER], timestamp=NOW)
    assert rejected(BODY, header, [SECRET, PREVIOUS]) is Reason.NO_MATCHING_SIGNATURE


def test_19_no_secret_configured_rejects_everything() -> None:
    header = sign(BODY, [SECRET], timestamp=NOW)
    assert rejected(BODY, header, []) is Reason.NO_SECRETS
    assert rejected(BODY, header, ["", "  \n"]) is Reason.NO_SECRETS


# 22 (verification side) ---------------------------------------------------------------------------
def test_22_replay_inside_window_still_verifies_dedupe_is_by_event_id() -> None:
    header = sign(BODY, [SECRET], timestamp=NOW)
    accepted(BODY, header)
    accepted(BODY, header)  # the signature layer cannot tell; intake dedupes on evt_ id


# 24 -----------------------------------------------------------------------------------------------
def test_24_multibyte_and_escaped_unicode_accepted() -> None:
    body = '{"name": "Café Ünïcødé 🎉 עברית", "escaped": "\\u00e9\\ud83c\\udf89"}'.encode()
    accepted(body, sign(body, [SECRET], timestamp=NOW))


# 25 -----------------------------------------------------------------------------------------------
def test_25_signed_invalid_utf8_is_a_bad_request_not_a_signature_error() -> None:
    body = b'{"id": "evt_\xff\xfe"}'
    with pytest.raises(InvalidRequest) as info:
        verify(body, sign(body, [SECRET], timestamp=NOW), [SECRET], now=NOW)
    assert not isinstance(info.value, SignatureInvalid)


def test_25_unsigned_invalid_utf8_is_a_signature_error() -> None:
    # Authenticate first: an unauthenticated caller only ever sees the generic refusal.
    body = b'{"id": "evt_\xff\xfe"}'
    assert rejected(body, sign(BODY, [SECRET], timestamp=NOW)) is Reason.NO_MATCHING_SIGNATURE


def test_25_stripe_sdk_raises_a_decode_error_on_invalid_utf8() -> None:
    body = b'{"id": "evt_\xff"}'
    with pytest.raises(UnicodeDecodeError):
        stripe.WebhookSignature.verify_header(body, sign(body, [SECRET], timestamp=NOW), SECRET)


def test_25_bom_is_just_bytes_for_the_signature() -> None:
    # Pinned: a signed body with a BOM verifies; refusing it is the JSON parser's job.
    body = b"\xef\xbb\xbf" + BODY
    accepted(body, sign(body, [SECRET], timestamp=NOW))
    assert rejected(BODY, sign(body, [SECRET], timestamp=NOW)) is Reason.NO_MATCHING_SIGNATURE


# 26 (verification side) ---------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"{}", b""])
def test_26_verify_does_not_parse_json(body: bytes) -> None:
    accepted(body, sign(body, [SECRET], timestamp=NOW))


# 28 (verification side) ---------------------------------------------------------------------------
def test_28_five_mib_body_verifies_quickly() -> None:
    body = b'{"lines": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    header = sign(body, [SECRET, PREVIOUS], timestamp=NOW)
    start = time.perf_counter()
    verify(body, header, [PREVIOUS, SECRET], now=NOW)
    assert time.perf_counter() - start < 2


# 32 -----------------------------------------------------------------------------------------------
def test_32_every_refusal_has_the_same_generic_message() -> None:
    headers = [
        None,
        "t=abc,v1=00",
        f"t={NOW},v1",
        f"t={NOW},v0={'0' * 64}",
        sign(BODY, [OTHER], timestamp=NOW),
        sign(BODY, [SECRET], timestamp=NOW - 3600),
        sign(BODY, [SECRET], timestamp=NOW + 3600),
        "x" * (MAX_HEADER_LENGTH + 1),
    ]
    reasons = set()
    for header in headers:
        with pytest.raises(SignatureInvalid) as info:
            verify(BODY, header, [SECRET], now=NOW)
        err = info.value
        assert str(err) == err.message == GENERIC_MESSAGE
        assert err.param is None
        assert err.code == "signature_invalid"
        for word in ("tolerance", "timestamp", "secret", "v1", "whsec", "expected"):
            assert word not in str(err).lower()
        assert isinstance(err, StripeSignatureInvalid)
        reasons.add(err.reason)
    assert len(reasons) == len(headers)  # but the logs can tell them apart


def test_32_secret_never_in_normalize_error() -> None:
    with pytest.raises(InvalidRequest) as info:
        normalize_secret("sk_live_supersecretvalue")
    assert "supersecretvalue" not in str(info.value)
    assert info.value.param == "webhook_secrets"


# 34 (unit half) -----------------------------------------------------------------------------------
def test_34_localstripe_style_delivery_accepted() -> None:
    # localstripe/webhooks.py: sorted pretty JSON, t = event.created, one v1, no v0.
    event = {"id": "evt_x", "object": "event", "created": NOW - 1, "type": "charge.succeeded"}
    payload = json.dumps(event, indent=2, sort_keys=True).encode("utf-8")
    signature = hmac.new(SECRET.encode("utf-8"), b"%d.%s" % (NOW - 1, payload), hashlib.sha256)
    accepted(payload, f"t={NOW - 1},v1={signature.hexdigest()}")


# 35 -----------------------------------------------------------------------------------------------
def test_35_cli_listen_secret_differs_reason_points_at_the_secret() -> None:
    cli_secret = "whsec_" + "ab" * 32  # `stripe listen` secrets are 64 hex chars
    header = sign(BODY, [cli_secret], timestamp=NOW)
    assert rejected(BODY, header) is Reason.NO_MATCHING_SIGNATURE


# 36 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tolerance", [0, -1, -300])
def test_36_non_positive_tolerance_is_a_configuration_error(tolerance: int) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        check_window(tolerance, 300)
    with pytest.raises(ValueError, match="tolerance"):
        verify(BODY, sign(BODY, [SECRET], timestamp=NOW), [SECRET], now=NOW, tolerance=tolerance)


def test_36_stripe_sdk_would_silently_disable_the_check_with_zero() -> None:
    stale = sign(BODY, [SECRET], timestamp=1)
    stripe.WebhookSignature.verify_header(BODY, stale, SECRET, tolerance=0)  # accepted!
    assert rejected(BODY, stale, tolerance=1) is Reason.TIMESTAMP_TOO_OLD


@pytest.mark.parametrize(("tolerance", "skew"), [(True, 300), (300, False), (1.5, 300), (300, -1)])
def test_36_window_types_and_negative_skew_refused(tolerance: object, skew: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        check_window(tolerance, skew)  # type: ignore[arg-type]


def test_36_smallest_window_is_valid() -> None:
    check_window(1, 0)


# Secrets ------------------------------------------------------------------------------------------
BAD_SECRETS = {
    "empty": "",
    "blank": "   ",
    "prefix-only": "whsec_",
    "api-key": "sk_test_123",
    "uppercase-prefix": "WHSEC_abc",
    "inner-space": "whsec_ab cd",
    "nul": "whsec_abc\x00",
    "non-ascii": "whsec_é",
    "too-long": "whsec_" + "a" * 251,
}


@pytest.mark.parametrize("bad", BAD_SECRETS.values(), ids=BAD_SECRETS.keys())
def test_normalize_secret_refuses_malformed(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        normalize_secret(bad)


def test_normalize_secrets_dedupes_and_keeps_order() -> None:
    assert normalize_secrets([SECRET, " " + PREVIOUS, SECRET + "\n"]) == (SECRET, PREVIOUS)


def test_normalize_secrets_refuses_empty_too_many_and_a_bare_string() -> None:
    with pytest.raises(InvalidRequest):
        normalize_secrets([])
    with pytest.raises(InvalidRequest):
        normalize_secrets([f"whsec_{i}" for i in range(MAX_SECRETS + 1)])
    with pytest.raises(TypeError):
        normalize_secrets(SECRET)


def test_verify_and_sign_refuse_a_bare_string_of_secrets() -> None:
    with pytest.raises(TypeError):
        verify(BODY, sign(BODY, [SECRET], timestamp=NOW), SECRET, now=NOW)
    with pytest.raises(TypeError):
        sign(BODY, SECRET, timestamp=NOW)


def test_sign_refuses_nothing_to_sign_with_and_bad_timestamps() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign(BODY, [], timestamp=NOW)
    with pytest.raises(ValueError, match="timestamp"):
        sign(BODY, [SECRET], timestamp=-1)


# Cross-checks with the official SDK: sign() is Stripe-compatible --------------------------------
def test_sdk_construct_event_accepts_sign_output() -> None:
    now = int(time.time())
    header = sign(BODY, [SECRET], timestamp=now)
    event = stripe.Webhook.construct_event(BODY, header, SECRET)
    assert event.id == "evt_1"
    assert event.type == "payment_intent.succeeded"


@pytest.mark.parametrize("secret", [SECRET, PREVIOUS])
def test_sdk_accepts_each_v1_of_a_rolling_header_with_v0(secret: str) -> None:
    header = sign(BODY, [SECRET, PREVIOUS], timestamp=int(time.time()), include_v0=True)
    assert stripe.Webhook.construct_event(BODY, header, secret).id == "evt_1"


def test_sdk_rejects_sign_output_under_another_secret() -> None:
    header = sign(BODY, [SECRET], timestamp=int(time.time()))
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(BODY, header, OTHER)


def test_sign_matches_the_sdk_header_generator_byte_for_byte() -> None:
    payload = '{"name": "Café 🎉"}'
    sdk = stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=NOW)
    assert sign(payload.encode(), [SECRET], timestamp=NOW) == sdk


def test_verify_accepts_the_sdk_generated_header() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET, timestamp=NOW)
    accepted(BODY, header)
