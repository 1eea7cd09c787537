"""FirebaseVerifier against a real loopback certificate server and locally minted tokens.

Covers the F1–F8 cases of research/xsolla-firebase.md §6.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from caisse.auth.firebase import FirebaseIdentity, FirebaseVerifier, KeysUnavailable
from caisse.auth.selfsigned import self_signed_certificate
from caisse.clock import FrozenClock
from caisse.errors import AuthenticationError

pytestmark = pytest.mark.anyio

PROJECT = "caisse-game"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
GENERIC = "Invalid or expired Firebase ID token"


@dataclass
class KeyPair:
    kid: str
    private: rsa.RSAPrivateKey
    cert_pem: str


def make_key(kid: str) -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(kid, private, self_signed_certificate(private, now=NOW))


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return make_key("kid-1")


@pytest.fixture(scope="module")
def other_key() -> KeyPair:
    return make_key("kid-2")


@dataclass
class CertServer:
    """What Google's x509 endpoint serves; tests change it between calls."""

    certs: dict[str, str] = field(default_factory=dict)
    cache_control: str | None = "public, max-age=3600, must-revalidate, no-transform"
    age: str | None = None
    status: int = 200
    body: bytes | None = None
    hits: int = 0
    url: str = ""

    def app(self) -> ASGIApp:
        async def certs(request: Request) -> Response:
            self.hits += 1
            headers = {}
            if self.cache_control is not None:
                headers["Cache-Control"] = self.cache_control
            if self.age is not None:
                headers["Age"] = self.age
            body = self.body if self.body is not None else json.dumps(self.certs).encode()
            return Response(
                body, status_code=self.status, headers=headers, media_type="application/json"
            )

        return Starlette(routes=[Route("/certs", certs)])


@pytest.fixture(scope="module")
def served(loopback: Callable[[ASGIApp], str]) -> CertServer:
    state = CertServer()
    state.url = loopback(state.app()) + "/certs"
    return state


@pytest.fixture
def server(served: CertServer, key: KeyPair) -> CertServer:
    """The module's certificate server, reset to Google's usual answer for each test."""
    served.certs = {key.kid: key.cert_pem}
    served.cache_control = "public, max-age=3600, must-revalidate, no-transform"
    served.age = None
    served.status = 200
    served.body = None
    served.hits = 0
    return served


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
async def verifier(server: CertServer, clock: FrozenClock) -> AsyncIterator[FirebaseVerifier]:
    async with httpx.AsyncClient() as http:
        yield FirebaseVerifier(server.url, http=http, clock=clock)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(NOW.timestamp())
    base: dict[str, Any] = {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "auth_time": now - 300,
        "user_id": "uid-123",
        "sub": "uid-123",
        "iat": now - 10,
        "exp": now + 3590,
        "email": "player@example.com",
        "email_verified": True,
        "firebase": {
            "identities": {"email": ["player@example.com"]},
            "sign_in_provider": "password",
        },
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(pair: KeyPair, kid: str | None = "default", **overrides: Any) -> str:
    headers = {"kid": pair.kid if kid == "default" else kid}
    if headers["kid"] is None:
        headers = {}
    return jwt.encode(claims(**overrides), pair.private, algorithm="RS256", headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned(payload: dict[str, Any], signature: str = "") -> str:
    """An emulator-style token: ``alg: none``, no kid, empty signature segment."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}.{signature}"


async def rejected(
    verifier: FirebaseVerifier, token: str, project: str | None = PROJECT, env: str = "live"
) -> None:
    with pytest.raises(AuthenticationError) as info:
        await verifier.verify(token, project, environment=env)
    assert str(info.value) == GENERIC  # one generic message for every reason


# F1 ---------------------------------------------------------------------------------------------


async def test_valid_token_is_accepted(verifier: FirebaseVerifier, key: KeyPair) -> None:
    identity = await verifier.verify(mint(key), PROJECT)
    assert isinstance(identity, FirebaseIdentity)
    assert identity.uid == "uid-123"
    assert identity.email == "player@example.com"
    assert identity.email_verified is True
    assert identity.sign_in_provider == "password"
    assert identity.auth_time == NOW - dt.timedelta(seconds=300)
    assert identity.claims["user_id"] == "uid-123"


async def test_unverified_email_is_reported_as_such(
    verifier: FirebaseVerifier, key: KeyPair
) -> None:
    identity = await verifier.verify(mint(key, email_verified=None, firebase=None), PROJECT)
    assert identity.email_verified is False
    assert identity.sign_in_provider is None


async def test_subject_of_128_characters_is_accepted(
    verifier: FirebaseVerifier, key: KeyPair
) -> None:
    identity = await verifier.verify(mint(key, sub="u" * 128), PROJECT)
    assert identity.uid == "u" * 128


# Signature and algorithm (F2, F3) ---------------------------------------------------------------


async def test_token_signed_by_another_key_is_rejected(
    verifier: FirebaseVerifier, key: KeyPair, other_key: KeyPair
) -> None:
    forged = jwt.encode(claims(), other_key.private, algorithm="RS256", headers={"kid": key.kid})
    await rejected(verifier, forged)


async def test_tampered_payload_is_rejected(verifier: FirebaseVerifier, key: KeyPair) -> None:
    header, _, signature = mint(key).split(".")
    payload = b64(json.dumps(claims(sub="victim")).encode())
    await rejected(verifier, f"{header}.{payload}.{signature}")


async def test_alg_none_is_rejected_without_emulator_opt_in(verifier: FirebaseVerifier) -> None:
    await rejected(verifier, unsigned(claims()))


async def test_alg_none_is_rejected_for_non_demo_project_even_with_opt_in(
    server: CertServer, clock: FrozenClock
) -> None:
    async with httpx.AsyncClient() as http:
        emulator = FirebaseVerifier(server.url, http=http, clock=clock, allow_emulator=True)
        await rejected(emulator, unsigned(claims()), env="test")
        await rejected(emulator, unsigned(claims()), None, env="test")


async def test_emulator_token_accepted_only_for_demo_project_with_opt_in(
    server: CertServer, clock: FrozenClock
) -> None:
    demo = "demo-caisse"
    token = unsigned(claims(aud=demo, iss=f"https://securetoken.google.com/{demo}"))
    async with httpx.AsyncClient() as http:
        strict = FirebaseVerifier(server.url, http=http, clock=clock)
        await rejected(strict, token, demo, env="test")
        emulator = FirebaseVerifier(server.url, http=http, clock=clock, allow_emulator=True)
        identity = await emulator.verify(token, demo, environment="test")
        anywhere = await emulator.verify(token, None, environment="test")
    assert identity.uid == anywhere.uid == "uid-123"
    assert anywhere.project_id == demo
    assert server.hits == 0  # no key needed for an emulator token


async def test_emulator_token_is_never_accepted_for_live(
    server: CertServer, clock: FrozenClock
) -> None:
    """Emulator mode on a live account whose Firebase project is demo-*: still refused."""
    demo = "demo-caisse"
    token = unsigned(claims(aud=demo, iss=f"https://securetoken.google.com/{demo}"))
    async with httpx.AsyncClient() as http:
        emulator = FirebaseVerifier(server.url, http=http, clock=clock, allow_emulator=True)
        await rejected(emulator, token, demo)  # environment defaults to live
        await rejected(emulator, token, demo, env="live")
        await rejected(emulator, token, None, env="live")


async def test_emulator_token_still_has_its_claims_checked(
    server: CertServer, clock: FrozenClock
) -> None:
    demo = "demo-caisse"
    iss = f"https://securetoken.google.com/{demo}"
    expired = unsigned(claims(aud=demo, iss=iss, exp=int(NOW.timestamp()) - 3600))
    wrong_aud = unsigned(claims(aud="demo-other", iss=iss))
    with_signature = unsigned(claims(aud=demo, iss=iss), signature=b64(b"x" * 32))
    async with httpx.AsyncClient() as http:
        emulator = FirebaseVerifier(server.url, http=http, clock=clock, allow_emulator=True)
        for token in (expired, wrong_aud, with_signature):
            await rejected(emulator, token, demo, env="test")


async def test_hs256_signed_with_the_public_certificate_is_rejected(
    verifier: FirebaseVerifier, key: KeyPair
) -> None:
    # Algorithm confusion: PyJWT refuses to *make* this token, so build it by hand.
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = b64(json.dumps(claims()).encode())
    for secret in (
        key.cert_pem.encode(),
        key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    ):
        mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        await rejected(verifier, f"{header}.{payload}.{b64(mac)}")


@pytest.mark.parametrize("alg", ["RS512", "ES256", "PS256"])
async def test_other_algorithms_are_rejected(
    verifier: FirebaseVerifier, key: KeyPair, alg: str
) -> None:
    header, payload, signature = mint(key).split(".")
    header = b64(json.dumps({"alg": alg, "kid": key.kid, "typ": "JWT"}).encode())
    await rejected(verifier, f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("token", ["", "garbage", "a.b", "a.b.c", "x" * 9000])
async def test_malformed_tokens_are_rejected(verifier: FirebaseVerifier, token: str) -> None:
    await rejected(verifier, token)


# Claims (F5, F6, F7) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "another-project"}, id="other-audience"),
        pytest.param(
            {
                "aud": "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit"
            },
            id="custom-token-audience",
        ),
        pytest.param({"aud": [PROJECT]}, id="audience-list"),
        pytest.param({"iss": "https://securetoken.google.com/another-project"}, id="other-issuer"),
        pytest.param(
            {"iss": f"https://session.firebase.google.com/{PROJECT}"}, id="session-cookie"
        ),
        pytest.param({"iss": "https://accounts.google.com"}, id="google-issuer"),
        pytest.param({"sub": ""}, id="empty-subject"),
        pytest.param({"sub": 12345}, id="integer-subject"),
        pytest.param({"sub": "u" * 129}, id="long-subject"),
        pytest.param({"exp": int(NOW.timestamp()) - 61}, id="expired-beyond-leeway"),
        pytest.param({"iat": int(NOW.timestamp()) + 120}, id="issued-in-future"),
        pytest.param({"auth_time": int(NOW.timestamp()) + 120}, id="auth-time-in-future"),
        pytest.param({"exp": "tomorrow"}, id="exp-not-a-number"),
        pytest.param({"iat": True}, id="iat-boolean"),
    ],
)
async def test_bad_claims_are_rejected(
    verifier: FirebaseVerifier, key: KeyPair, overrides: dict[str, Any]
) -> None:
    await rejected(verifier, mint(key, **overrides))


@pytest.mark.parametrize("missing", ["sub", "exp", "iat", "auth_time", "aud", "iss"])
async def test_missing_claims_are_rejected(
    verifier: FirebaseVerifier, key: KeyPair, missing: str
) -> None:
    payload = claims()
    del payload[missing]
    token = jwt.encode(payload, key.private, algorithm="RS256", headers={"kid": key.kid})
    await rejected(verifier, token)


async def test_expiry_within_leeway_is_accepted(verifier: FirebaseVerifier, key: KeyPair) -> None:
    now = int(NOW.timestamp())
    identity = await verifier.verify(
        mint(key, exp=now - 30, iat=now + 30, auth_time=now + 30), PROJECT
    )
    assert identity.uid == "uid-123"


async def test_zero_leeway_is_strict(server: CertServer, clock: FrozenClock, key: KeyPair) -> None:
    async with httpx.AsyncClient() as http:
        strict = FirebaseVerifier(server.url, http=http, clock=clock, leeway=0)
        await rejected(strict, mint(key, exp=int(NOW.timestamp()) - 1))
        await rejected(strict, mint(key, iat=int(NOW.timestamp()) + 1))


@pytest.mark.parametrize("leeway", [-1, 61, 300])
def test_leeway_beyond_sixty_seconds_is_refused(leeway: int) -> None:
    with pytest.raises(ValueError, match="leeway"):
        FirebaseVerifier("http://127.0.0.1:9/certs", leeway=leeway)


async def test_token_for_one_project_is_refused_for_another(
    verifier: FirebaseVerifier, key: KeyPair
) -> None:
    await rejected(verifier, mint(key), "another-project")


async def test_any_project_check_then_require_project(
    verifier: FirebaseVerifier, key: KeyPair
) -> None:
    """Two steps (signature and times first, then the tenant's project) equal one check."""
    identity = await verifier.verify(mint(key), None)
    assert identity.project_id == PROJECT
    assert identity.require_project(PROJECT) is identity
    with pytest.raises(AuthenticationError):
        identity.require_project("another-project")
    # aud and iss must still name the same project.
    await rejected(verifier, mint(key, iss="https://securetoken.google.com/other"), None)
    await rejected(verifier, mint(key, aud=None), None)
    custom = (
        "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit"
    )
    await rejected(verifier, mint(key, aud=custom), None)


# Key ids and the certificate cache (F4, F8) -----------------------------------------------------


async def test_missing_kid_is_rejected_without_fetching(
    verifier: FirebaseVerifier, key: KeyPair, server: CertServer
) -> None:
    await rejected(verifier, mint(key, kid=None))
    await rejected(verifier, mint(key, kid=""))
    assert server.hits == 0


async def test_unknown_kid_refetches_at_most_once_a_minute(
    verifier: FirebaseVerifier, key: KeyPair, clock: FrozenClock, server: CertServer
) -> None:
    await verifier.verify(mint(key), PROJECT)
    assert server.hits == 1
    stranger = mint(key, kid="not-a-google-kid")
    await rejected(verifier, stranger)  # fetched 0 s ago: no refetch
    assert server.hits == 1
    clock.advance(61)
    await rejected(verifier, stranger)  # one refetch, still unknown
    assert server.hits == 2
    for _ in range(5):
        await rejected(verifier, stranger)
    clock.advance(30)
    await rejected(verifier, stranger)
    assert server.hits == 2


async def test_unknown_kid_on_cold_cache_fetches_once(
    verifier: FirebaseVerifier, key: KeyPair, server: CertServer
) -> None:
    await rejected(verifier, mint(key, kid="not-a-google-kid"))
    assert server.hits == 1


async def test_rotated_key_is_picked_up_by_a_refetch(
    verifier: FirebaseVerifier,
    key: KeyPair,
    other_key: KeyPair,
    clock: FrozenClock,
    server: CertServer,
) -> None:
    await verifier.verify(mint(key), PROJECT)
    server.certs[other_key.kid] = other_key.cert_pem  # Google publishes a new key
    clock.advance(61)
    identity = await verifier.verify(mint(other_key), PROJECT)
    assert identity.uid == "uid-123"
    assert server.hits == 2


async def test_cache_honours_max_age(
    verifier: FirebaseVerifier, key: KeyPair, clock: FrozenClock, server: CertServer
) -> None:
    server.cache_control = "public, max-age=120, must-revalidate"
    for _ in range(3):
        await verifier.verify(mint(key), PROJECT)
    assert server.hits == 1
    clock.advance(119)
    await verifier.verify(mint(key), PROJECT)
    assert server.hits == 1
    clock.advance(2)
    await verifier.verify(mint(key), PROJECT)
    assert server.hits == 2
    assert verifier.certificate_fetches == 2


async def test_cache_subtracts_age_header(
    verifier: FirebaseVerifier, key: KeyPair, clock: FrozenClock, server: CertServer
) -> None:
    server.cache_control = "public, max-age=600"
    server.age = "500"
    await verifier.verify(mint(key), PROJECT)
    clock.advance(99)
    await verifier.verify(mint(key), PROJECT)
    assert server.hits == 1
    clock.advance(2)
    await verifier.verify(mint(key), PROJECT)
    assert server.hits == 2


@pytest.mark.parametrize(
    "cache_control", [None, "public", "no-store", "no-cache", "max-age=0", "max-age=10"]
)
async def test_answers_without_a_usable_lifetime_are_kept_a_minute(
    verifier: FirebaseVerifier,
    key: KeyPair,
    clock: FrozenClock,
    server: CertServer,
    cache_control: str | None,
) -> None:
    """Not one fetch per verification: at least 60 s, whatever a proxy did to the header."""
    server.cache_control = cache_control
    for _ in range(3):
        await verifier.verify(mint(key), PROJECT)
    assert server.hits == 1
    clock.advance(59)
    await verifier.verify(mint(key), PROJECT)
    assert server.hits == 1
    clock.advance(2)
    await verifier.verify(mint(key), PROJECT)
    assert server.hits == 2


async def test_concurrent_requests_share_one_fetch(
    verifier: FirebaseVerifier, key: KeyPair, server: CertServer
) -> None:
    token = mint(key)
    uids: list[str] = []

    async def one() -> None:
        uids.append((await verifier.verify(token, PROJECT)).uid)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(one)
    assert uids == ["uid-123"] * 10
    assert server.hits == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(500, None, id="server-error"),
        pytest.param(503, None, id="unavailable"),
        pytest.param(200, b"<html>not json</html>", id="not-json"),
        pytest.param(200, b"[]", id="not-an-object"),
        pytest.param(200, b'{"kid-1": "not a certificate"}', id="bad-pem"),
        pytest.param(200, b"{}", id="no-keys"),
    ],
)
async def test_certificate_failures_raise_keys_unavailable(
    verifier: FirebaseVerifier, key: KeyPair, server: CertServer, status: int, body: bytes | None
) -> None:
    server.status = status
    server.body = body
    with pytest.raises(KeysUnavailable) as info:
        await verifier.verify(mint(key), PROJECT)
    assert not isinstance(info.value, AuthenticationError)  # a 503, not a 401


async def test_certificate_server_down_raises_keys_unavailable(
    clock: FrozenClock, key: KeyPair
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as http:
        down = FirebaseVerifier(f"http://127.0.0.1:{port}/certs", http=http, clock=clock)
        with pytest.raises(KeysUnavailable):
            await down.verify(mint(key), PROJECT)


async def test_expired_cache_is_not_trusted_when_refetch_fails(
    verifier: FirebaseVerifier, key: KeyPair, clock: FrozenClock, server: CertServer
) -> None:
    server.cache_control = "max-age=60"
    await verifier.verify(mint(key), PROJECT)
    server.status = 500
    clock.advance(61)
    with pytest.raises(KeysUnavailable):
        await verifier.verify(mint(key), PROJECT)
    # Failures back off briefly instead of hammering the endpoint, then recover.
    with pytest.raises(KeysUnavailable):
        await verifier.verify(mint(key), PROJECT)
    assert server.hits == 2
    server.status = 200
    clock.advance(6)
    assert (await verifier.verify(mint(key), PROJECT)).uid == "uid-123"
    assert server.hits == 3


async def test_fresh_cache_survives_a_failed_unknown_kid_refetch(
    verifier: FirebaseVerifier, key: KeyPair, clock: FrozenClock, server: CertServer
) -> None:
    await verifier.verify(mint(key), PROJECT)
    server.status = 500
    clock.advance(61)
    with pytest.raises(KeysUnavailable):
        await verifier.verify(mint(key, kid="not-a-google-kid"), PROJECT)
    assert (await verifier.verify(mint(key), PROJECT)).uid == "uid-123"
