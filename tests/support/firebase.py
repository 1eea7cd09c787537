"""Firebase ID tokens minted offline: an RSA key with a self-signed certificate, served as
Google's x509 document (``{kid: PEM}``) by a loopback app, and tokens signed with PyJWT."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from caisse.auth.selfsigned import self_signed_certificate


@dataclass
class KeyPair:
    kid: str
    private: rsa.RSAPrivateKey
    cert_pem: str

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def make_key(kid: str) -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(kid, private, self_signed_certificate(private))


@dataclass
class CertServer:
    """What Google's certificate endpoint serves, and how often it was asked."""

    certs: dict[str, str] = field(default_factory=dict)
    hits: int = 0
    status: int = 200  # set to 500 to play Google's endpoint failing

    def app(self) -> ASGIApp:
        async def certs(request: Request) -> Response:
            self.hits += 1
            return Response(
                json.dumps(self.certs),
                status_code=self.status,
                headers={"Cache-Control": "public, max-age=3600"},
                media_type="application/json",
            )

        return Starlette(routes=[Route("/certs", certs)])


def claims(project: str, uid: str = "player-1", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "auth_time": now - 300,
        "user_id": uid,
        "sub": uid,
        "iat": now - 10,
        "exp": now + 3590,
        "email": f"{uid}@example.com",
        "email_verified": True,
        "firebase": {"sign_in_provider": "password"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(
    pair: KeyPair,
    project: str,
    uid: str = "player-1",
    *,
    kid: str | None = "default",
    **overrides: Any,
) -> str:
    headers = {} if kid is None else {"kid": pair.kid if kid == "default" else kid}
    return jwt.encode(
        claims(project, uid, **overrides), pair.private, algorithm="RS256", headers=headers
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned(payload: dict[str, Any]) -> str:
    """An emulator-style token: ``alg: none``, no kid, empty signature segment."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."


def hs256_with_public_key(pair: KeyPair, project: str, uid: str = "player-1") -> str:
    """Algorithm confusion: HS256 "signed" with the public key's PEM as the secret."""
    import hashlib
    import hmac

    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": pair.kid}).encode())
    body = _b64(json.dumps(claims(project, uid)).encode())
    mac = hmac.new(pair.public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"
