"""Stripe webhook signatures: the policy caisse applies to every inbound Stripe request.

Stripe signs ``b"<t>." + raw body`` with HMAC-SHA256 keyed by the whole ``whsec_…`` string (UTF-8),
and sends ``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]``: one ``v1`` per
active secret while a secret is being rolled, plus a dummy ``v0`` on test-mode deliveries
(docs.stripe.com/webhooks/signature; ``stripe/_webhook.py`` in stripe-python). caisse accepts what
the SDK accepts, with these differences, each pinned by ``tests/unit/providers/stripe``:

* a header longer than 8 KiB, not ASCII, with more than 64 elements or more than 32 ``v1`` is
  refused before any HMAC is computed;
* every element must be ``key=value``; empty elements (``,,``) are refused; spaces or tabs around
  an element are tolerated because proxies join repeated header lines with ``", "``;
* ``t`` must appear, in canonical decimal (no sign, no leading zero, at most 12 digits); repeating
  it with the same value is tolerated (a proxy-joined duplicate line), with another value refused
  (the SDK silently takes the first one);
* only ``v1`` counts: a header with only ``v0`` is refused; ``v0`` and unknown schemes are ignored;
  any ``v1`` matching any secret passes, whatever the order;
* ``t`` older than ``tolerance`` **or** more than ``future_skew`` ahead is refused (the SDK lets any
  future ``t`` pass and switches the age check off when tolerance is 0; here a tolerance below one
  second is a configuration error, :func:`check_window`). Boundaries: an age of exactly
  ``tolerance`` passes, one more second fails; same for ``future_skew``.

Checks run header shape → signature → timestamp (the SDK's order), so a wrong secret is logged as a
wrong secret even on a stale retry. The HMAC runs over the raw bytes; only once a signature matched
must the body be UTF-8 (else :class:`~caisse.errors.InvalidRequest`, a 400), so an unauthenticated
caller only ever sees one generic answer. Every rejection raises :class:`StripeSignatureInvalid`
with the same message; the precise cause is on ``.reason``, for logs only (Cellarion#451).
A UTF-8 BOM is just bytes here: if signed, it verifies; refusing it is the JSON parser's job.

The HMAC comparison is the official SDK's own (``stripe.WebhookSignature.verify_header``, given the
decoded body and the header in canonical form); caisse's stricter header policy runs before it and
the two-sided time window after it, against caisse's clock. Only a body that is not UTF-8, which the
SDK cannot take, is checked with a raw HMAC here, to tell a signed-but-broken body (400
``InvalidRequest``) from an unsigned one (generic refusal). :func:`sign` computes the HMAC itself
for tests and the simulator; the tests prove it agrees with the SDK byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from enum import StrEnum

import stripe

from caisse.errors import InvalidRequest, SignatureInvalid

__all__ = [
    "DEFAULT_FUTURE_SKEW",
    "DEFAULT_TOLERANCE",
    "GENERIC_MESSAGE",
    "MAX_ELEMENTS",
    "MAX_HEADER_LENGTH",
    "MAX_SECRETS",
    "MAX_V1_SIGNATURES",
    "SECRET_PREFIX",
    "Reason",
    "StripeSignatureInvalid",
    "check_window",
    "normalize_secret",
    "normalize_secrets",
    "sign",
    "verify",
]

DEFAULT_TOLERANCE = 300  # seconds; Stripe's documented default
DEFAULT_FUTURE_SKEW = 300  # seconds; stripe-dotnet checks both directions with the same window
MAX_HEADER_LENGTH = 8 * 1024  # characters, which are bytes since the header must be ASCII
MAX_ELEMENTS = 64
MAX_V1_SIGNATURES = 32
MAX_SECRETS = 8  # each secret costs one HMAC over the body
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
GENERIC_MESSAGE = "The Stripe-Signature header could not be verified."

_SCHEME = "v1"
_TIMESTAMP_RE = re.compile(r"0|[1-9][0-9]{0,11}")
_SECRET_RE = re.compile(r"whsec_[A-Za-z0-9+/=_\-]{1,250}")
_OWS = " \t"


class Reason(StrEnum):
    """Why a signature was refused; for logs and metrics, never for the HTTP response."""

    NO_SECRETS = "no_secrets"
    HEADER_MISSING = "header_missing"
    HEADER_TOO_LARGE = "header_too_large"
    HEADER_NOT_ASCII = "header_not_ascii"
    TOO_MANY_ELEMENTS = "too_many_elements"
    MALFORMED_ELEMENT = "malformed_element"
    TIMESTAMP_MISSING = "timestamp_missing"
    TIMESTAMP_INVALID = "timestamp_invalid"
    TIMESTAMP_AMBIGUOUS = "timestamp_ambiguous"
    NO_V1_SIGNATURE = "no_v1_signature"
    TOO_MANY_SIGNATURES = "too_many_signatures"
    NO_MATCHING_SIGNATURE = "no_matching_signature"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"


class StripeSignatureInvalid(SignatureInvalid):
    """A refused Stripe signature: generic message for callers, precise ``reason`` for logs."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(GENERIC_MESSAGE)
        self.reason = reason


def check_window(tolerance: int, future_skew: int) -> None:
    """Refuse windows that would weaken the check; call at configuration time.

    stripe-python treats a falsy tolerance as "no age check" (research table, case 36); caisse
    makes that impossible to configure by accident.
    """
    for name, value in (("tolerance", tolerance), ("future_skew", future_skew)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int number of seconds")
    if tolerance < 1:
        raise ValueError("tolerance must be at least 1 second; 0 does not disable the check")
    if future_skew < 0:
        raise ValueError("future_skew must not be negative")


def normalize_secret(secret: str) -> str:
    """Strip copy-paste whitespace and check the ``whsec_`` shape; never echo the secret back."""
    value = secret.strip()
    if not _SECRET_RE.fullmatch(value):
        raise InvalidRequest(
            "A Stripe webhook signing secret starts with 'whsec_' followed by letters and digits.",
            param="webhook_secrets",
        )
    return value


def normalize_secrets(secrets: Iterable[str]) -> tuple[str, ...]:
    """Normalise a tenant's active secrets (current first), drop duplicates, keep the order."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of strings, not one string")
    out: list[str] = []
    for secret in secrets:
        value = normalize_secret(secret)
        if value not in out:
            out.append(value)
    if not out:
        raise InvalidRequest(
            "At least one webhook signing secret is required.", param="webhook_secrets"
        )
    if len(out) > MAX_SECRETS:
        raise InvalidRequest(
            f"At most {MAX_SECRETS} webhook signing secrets can be active.", param="webhook_secrets"
        )
    return tuple(out)


def _hmac_hex(secret: str, signed_payload: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), signed_payload, hashlib.sha256).hexdigest()


def _parse_header(header: str | None) -> tuple[int, list[str]]:
    if header is None or not header.strip(_OWS):
        raise StripeSignatureInvalid(Reason.HEADER_MISSING)
    if len(header) > MAX_HEADER_LENGTH:
        raise StripeSignatureInvalid(Reason.HEADER_TOO_LARGE)
    if not header.isascii():
        raise StripeSignatureInvalid(Reason.HEADER_NOT_ASCII)
    elements = header.split(",")
    if len(elements) > MAX_ELEMENTS:
        raise StripeSignatureInvalid(Reason.TOO_MANY_ELEMENTS)

    timestamps: set[str] = set()
    signatures: list[str] = []
    for element in elements:
        key, sep, value = element.strip(_OWS).partition("=")
        if not sep or not key:
            raise StripeSignatureInvalid(Reason.MALFORMED_ELEMENT)
        if key == "t":
            timestamps.add(value)
        elif key == _SCHEME:
            signatures.append(value)
        # v0 and unknown schemes are ignored on purpose: only v1 is trusted.

    if not timestamps:
        raise StripeSignatureInvalid(Reason.TIMESTAMP_MISSING)
    if len(timestamps) > 1:
        raise StripeSignatureInvalid(Reason.TIMESTAMP_AMBIGUOUS)
    (raw_timestamp,) = timestamps
    # int() alone would accept "+1", " 1", "1_000" and non-ASCII digits.
    if not _TIMESTAMP_RE.fullmatch(raw_timestamp):
        raise StripeSignatureInvalid(Reason.TIMESTAMP_INVALID)
    if not signatures:
        raise StripeSignatureInvalid(Reason.NO_V1_SIGNATURE)
    if len(signatures) > MAX_V1_SIGNATURES:
        raise StripeSignatureInvalid(Reason.TOO_MANY_SIGNATURES)
    return int(raw_timestamp), signatures


def verify(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: int,
    tolerance: int = DEFAULT_TOLERANCE,
    future_skew: int = DEFAULT_FUTURE_SKEW,
) -> None:
    """Accept ``payload`` only if ``header`` carries a fresh ``v1`` made with one of ``secrets``.

    ``payload`` is the raw request body, byte for byte; ``now`` is unix seconds from the caller's
    clock. Raises :class:`StripeSignatureInvalid` (generic message, ``.reason`` for logs), or
    :class:`~caisse.errors.InvalidRequest` when a correctly signed body is not UTF-8.
    Verify once, at ingest: never re-verify a stored event later against the tolerance.
    """
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of strings, not one string")
    check_window(tolerance, future_skew)
    keys = [key for key in (secret.strip() for secret in secrets) if key]
    if not keys:
        raise StripeSignatureInvalid(Reason.NO_SECRETS)

    timestamp, signatures = _parse_header(header)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None:
        # The SDK signs the decoded text, so it cannot judge these bytes; the raw HMAC says
        # whether the sender knew a secret (then the body is a plain 400), or not (generic).
        signed_payload = b"%d." % timestamp + payload
        expected = [_hmac_hex(key, signed_payload) for key in keys]
        if any(hmac.compare_digest(e, s) for e in expected for s in signatures):
            raise InvalidRequest("The request body is not valid UTF-8.")
        raise StripeSignatureInvalid(Reason.NO_MATCHING_SIGNATURE)
    if not _sdk_verifies(text, timestamp, signatures, keys):
        raise StripeSignatureInvalid(Reason.NO_MATCHING_SIGNATURE)

    if now - timestamp > tolerance:
        raise StripeSignatureInvalid(Reason.TIMESTAMP_TOO_OLD)
    if timestamp - now > future_skew:
        raise StripeSignatureInvalid(Reason.TIMESTAMP_IN_FUTURE)


def _sdk_verifies(text: str, timestamp: int, signatures: list[str], keys: Sequence[str]) -> bool:
    """The HMAC check itself is the official SDK's (``WebhookSignature.verify_header``).

    It is handed the header in canonical form (what :func:`_parse_header` accepted, without the
    proxy whitespace the SDK would not strip), and no tolerance: the time window is checked by
    :func:`verify` against caisse's clock, in both directions.
    """
    canonical = f"t={timestamp}," + ",".join(f"{_SCHEME}={s}" for s in signatures)
    for key in keys:
        try:
            stripe.WebhookSignature.verify_header(text, canonical, key, tolerance=None)
        except stripe.SignatureVerificationError:
            continue
        return True
    return False


def sign(
    payload: bytes,
    secrets: Sequence[str],
    *,
    timestamp: int,
    include_v0: bool = False,
) -> str:
    """Build a ``Stripe-Signature`` value as Stripe does: ``t``, one ``v1`` per secret, opt. ``v0``.

    For tests and the simulator. ``include_v0`` adds the dummy test-mode ``v0`` that a real
    Stripe test delivery carries; it is not a valid signature under any secret.
    """
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of strings, not one string")
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    if isinstance(timestamp, bool) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative int")
    signed_payload = b"%d." % timestamp + payload
    parts = [f"t={timestamp}"]
    parts += [f"{_SCHEME}={_hmac_hex(normalize_secret(s), signed_payload)}" for s in secrets]
    if include_v0:
        parts.append(f"v0={hashlib.sha256(b'v0.' + signed_payload).hexdigest()}")
    return ",".join(parts)
