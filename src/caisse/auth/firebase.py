"""Firebase ID token verification without the Firebase SDK.

Rules from https://firebase.google.com/docs/auth/admin/verify-id-tokens ("Verify ID tokens using
a third-party JWT library"), with firebase-admin-python's order of checks:

- header: ``alg`` is ``RS256`` and nothing else (so neither ``none`` nor an HS256 token "signed"
  with the public certificate passes); ``kid`` is present and names one of the x509 certificates
  Google serves at the certs URL (``{kid: PEM}``); the key is looked up by kid only, never by
  trying every key;
- payload: ``aud`` is the project id, ``iss`` is ``https://securetoken.google.com/<project>``,
  ``sub`` (the uid) is a non-empty string of at most 128 characters, ``exp`` is in the future,
  ``iat`` and ``auth_time`` are not in the future; all times with a leeway of at most 60 s
  (firebase-admin's own bound). firebase-admin skips ``auth_time``; we check it, as the
  Cloudflare port and kreait's PHP library do.

Time comes from the injected :class:`~caisse.clock.Clock`, not from PyJWT, so tests can freeze
it: PyJWT checks only the signature and the algorithm; every claim is checked here.

Keys are cached for the ``Cache-Control: max-age`` (minus ``Age``) of the certificate answer,
and at least :data:`MIN_FRESHNESS` (60 s), also when the answer gives no usable lifetime (no
``max-age``, ``no-cache``, ``no-store``): Google always sends hours, so this only matters for a
proxy or mirror that strips the header, and it keeps one fetch per verification from happening.
A kid not in a fresh cache triggers at most one refetch a minute (a stream of forged kids cannot
turn us into a load generator against Google). When no usable key set can be had, the verifier
raises :class:`KeysUnavailable`, a 503, never "accept" and never a misleading 401.

Emulator tokens (``alg: none``, no signature) are accepted only when the verifier was built with
``allow_emulator=True`` *and* the token is for the ``test`` environment *and* the project id
starts with ``demo-`` (Firebase's marker for demo projects without live resources); every claim
check still applies. A ``live`` verification never accepts one, whatever the settings say.
Unlike firebase-admin, the ``FIREBASE_AUTH_EMULATOR_HOST`` variable is never looked at.

``verify(token, None)`` checks everything but *which* project the token is for (``aud`` must
still be a project and ``iss`` that project's issuer) and reports it as ``project_id``; the
caller then compares it with the project it expects (:meth:`FirebaseIdentity.require_project`).
This lets an endpoint refuse an anonymous caller (401) before revealing whether the tenant it
names exists.

Every rejection raises :class:`~caisse.errors.AuthenticationError` with the same generic message;
the precise reason goes to the debug log only, without the token.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import anyio
import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from caisse.clock import Clock, SystemClock
from caisse.errors import AuthenticationError, ProviderUnavailable

log = logging.getLogger(__name__)

ISSUER_PREFIX: Final = "https://securetoken.google.com/"
MAX_LEEWAY: Final = 60
MIN_REFETCH_INTERVAL: Final = 60.0
MIN_FRESHNESS: Final = 60
FETCH_TIMEOUT: Final = 5.0
_FAILURE_BACKOFF: Final = 5.0
_MAX_TOKEN_CHARS: Final = 8192
_GENERIC: Final = "Invalid or expired Firebase ID token"
_MAX_AGE_RE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


class KeysUnavailable(ProviderUnavailable):
    """Google's signing certificates could not be obtained: answer 503, do not accept."""

    code = "auth_keys_unavailable"


@dataclass(frozen=True, slots=True)
class FirebaseIdentity:
    """A verified Firebase user. ``email`` is only to be trusted when ``email_verified``."""

    uid: str
    email: str | None
    email_verified: bool
    sign_in_provider: str | None
    auth_time: dt.datetime
    project_id: str = ""  # the token's ``aud`` (and ``iss`` suffix)
    claims: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def require_project(self, project_id: str) -> FirebaseIdentity:
        """This identity if the token was issued for ``project_id``; else the generic 401."""
        if not project_id or self.project_id != project_id:
            raise _reject("token for another project")
        return self


class _CertificateCache:
    """Google's ``{kid: PEM certificate}`` document, cached per ``Cache-Control: max-age``."""

    def __init__(
        self, url: str, http: httpx.AsyncClient, clock: Clock, min_refetch_interval: float
    ) -> None:
        self._url = url
        self._http = http
        self._clock = clock
        self._min_refetch = min_refetch_interval
        self._keys: dict[str, RSAPublicKey] = {}
        self._expires_at: dt.datetime | None = None
        self._last_fetch: dt.datetime | None = None
        self._last_failure: dt.datetime | None = None
        self._lock = anyio.Lock()
        self.fetches = 0  # observable by tests and metrics

    async def get(self, kid: str) -> RSAPublicKey | None:
        """The key for ``kid``; None if Google does not publish it; KeysUnavailable on failure."""
        if self._fresh() and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            # Another request may have refreshed the cache while we waited for the lock.
            if self._fresh():
                if kid in self._keys:
                    return self._keys[kid]
                if not self._may_refetch_unknown_kid():
                    return None
            elif self._in_failure_backoff():
                raise KeysUnavailable("Firebase signing keys are unavailable")
            await self._refresh()
            return self._keys.get(kid)

    def _fresh(self) -> bool:
        return self._expires_at is not None and self._clock.now() < self._expires_at

    def _may_refetch_unknown_kid(self) -> bool:
        if self._last_fetch is None:
            return True
        elapsed = (self._clock.now() - self._last_fetch).total_seconds()
        return elapsed >= self._min_refetch

    def _in_failure_backoff(self) -> bool:
        if self._last_failure is None:
            return False
        elapsed = (self._clock.now() - self._last_failure).total_seconds()
        return 0 <= elapsed < _FAILURE_BACKOFF

    async def _refresh(self) -> None:
        now = self._clock.now()
        self._last_fetch = now
        self.fetches += 1
        try:
            response = await self._http.get(self._url, timeout=FETCH_TIMEOUT)
            response.raise_for_status()
            document = response.json()
            keys = _parse_certificates(document)
        except (httpx.HTTPError, ValueError) as exc:
            self._last_failure = now
            log.warning(
                "firebase certificates fetch failed",
                extra={"action": "auth.firebase.certs_failed", "error": type(exc).__name__},
            )
            # A fresh cache stays usable; an expired or empty one must not be trusted.
            if not self._fresh():
                self._keys = {}
                self._expires_at = None
            raise KeysUnavailable("Firebase signing keys are unavailable") from None
        self._keys = keys
        self._last_failure = None
        self._expires_at = now + dt.timedelta(seconds=_freshness(response.headers))


def _parse_certificates(document: Any) -> dict[str, RSAPublicKey]:
    if not isinstance(document, dict):
        raise ValueError("certificate document is not an object")
    keys: dict[str, RSAPublicKey] = {}
    for kid, pem in document.items():
        if not isinstance(kid, str) or not isinstance(pem, str):
            continue
        try:
            public_key = x509.load_pem_x509_certificate(pem.encode("ascii")).public_key()
        except ValueError:
            log.warning("skipping an unreadable firebase certificate", extra={"kid": kid})
            continue
        if isinstance(public_key, RSAPublicKey):
            keys[kid] = public_key
    if not keys:
        raise ValueError("no usable certificate in the document")
    return keys


def _freshness(headers: httpx.Headers) -> int:
    """Seconds the answer stays fresh: ``max-age`` minus ``Age``, never under MIN_FRESHNESS
    (no-store, no-cache or no ``max-age`` get the minimum, not a fetch per verification)."""
    cache_control = headers.get("cache-control", "")
    lowered = cache_control.lower()
    match = _MAX_AGE_RE.search(cache_control)
    if "no-store" in lowered or "no-cache" in lowered or match is None:
        return MIN_FRESHNESS
    age = headers.get("age", "0").strip()
    return max(MIN_FRESHNESS, int(match.group(1)) - (int(age) if age.isdigit() else 0))


class FirebaseVerifier:
    """Verifies Firebase ID tokens for any project; one instance per process (shared cache)."""

    def __init__(
        self,
        certs_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        leeway: int = MAX_LEEWAY,
        allow_emulator: bool = False,
        min_refetch_interval: float = MIN_REFETCH_INTERVAL,
    ) -> None:
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY} seconds")
        self._own_http = http is None
        self._http = http or httpx.AsyncClient()
        self._clock: Clock = clock or SystemClock()
        self._leeway = dt.timedelta(seconds=leeway)
        self._allow_emulator = allow_emulator
        self._certs = _CertificateCache(certs_url, self._http, self._clock, min_refetch_interval)

    @property
    def certificate_fetches(self) -> int:
        """How many times the certificates were fetched (for tests and metrics)."""
        return self._certs.fetches

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_http:
            await self._http.aclose()

    @property
    def allows_emulator(self) -> bool:
        """Whether unsigned emulator tokens may pass (test environment, demo-* projects)."""
        return self._allow_emulator

    async def verify(
        self, token: str, project_id: str | None, *, environment: str = "live"
    ) -> FirebaseIdentity:
        """Check ``token`` for ``project_id`` (None: any project, see the module docstring) in
        ``environment``; AuthenticationError, or KeysUnavailable (503)."""
        if project_id is not None and not project_id:
            raise ValueError("a Firebase project id is required")
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_CHARS:
            raise _reject("empty or oversized token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _reject("unreadable header") from None
        alg = header.get("alg")
        if alg == "none":
            claims = self._emulator_claims(token, project_id, environment)
        elif alg == "RS256":
            claims = await self._signed_claims(token, header)
        else:
            raise _reject(f"algorithm {alg!r} refused")
        return self._check_claims(claims, project_id)

    def _emulator_claims(
        self, token: str, project_id: str | None, environment: str
    ) -> dict[str, Any]:
        if not (self._allow_emulator and environment == "test"):
            raise _reject("unsigned token refused")
        if project_id is not None and not project_id.startswith("demo-"):
            raise _reject("unsigned token refused")
        if not token.endswith("."):
            raise _reject("unsigned token with a signature segment")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, options={"verify_signature": False}, algorithms=["none"]
            )
        except jwt.PyJWTError:
            raise _reject("unreadable unsigned token") from None
        audience = claims.get("aud")
        if not (isinstance(audience, str) and audience.startswith("demo-")):
            raise _reject("unsigned token for a project that is not demo-*")
        return claims

    async def _signed_claims(self, token: str, header: Mapping[str, Any]) -> dict[str, Any]:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _reject("missing kid")
        key = await self._certs.get(kid)
        if key is None:
            raise _reject("unknown kid")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                # Claims are checked below against the injected clock, not PyJWT's.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.PyJWTError:
            raise _reject("bad signature") from None
        return claims

    def _check_claims(self, claims: Mapping[str, Any], project_id: str | None) -> FirebaseIdentity:
        audience = claims.get("aud")
        if not isinstance(audience, str) or not audience:
            raise _reject("missing audience")
        if project_id is not None and audience != project_id:
            raise _reject("wrong audience")
        if claims.get("iss") != ISSUER_PREFIX + audience:
            raise _reject("wrong issuer")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 1 <= len(sub) <= 128:
            raise _reject("bad subject")
        now = self._clock.now()
        exp = _instant(claims.get("exp"))
        iat = _instant(claims.get("iat"))
        auth_time = _instant(claims.get("auth_time"))
        if exp is None or iat is None or auth_time is None:
            raise _reject("missing time claims")
        if now >= exp + self._leeway:
            raise _reject("expired")
        if iat > now + self._leeway:
            raise _reject("issued in the future")
        if auth_time > now + self._leeway:
            raise _reject("authenticated in the future")
        firebase = claims.get("firebase")
        provider = firebase.get("sign_in_provider") if isinstance(firebase, dict) else None
        email = claims.get("email")
        return FirebaseIdentity(
            uid=sub,
            email=email if isinstance(email, str) and email else None,
            email_verified=claims.get("email_verified") is True,
            sign_in_provider=provider if isinstance(provider, str) else None,
            auth_time=auth_time,
            project_id=audience,
            claims=MappingProxyType(dict(claims)),
        )


def _instant(value: Any) -> dt.datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _reject(reason: str) -> AuthenticationError:
    log.debug("firebase token rejected: %s", reason, extra={"action": "auth.firebase.rejected"})
    return AuthenticationError(_GENERIC)
