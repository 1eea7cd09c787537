"""A self-signed x509 certificate for an RSA key, in the PEM form Google's securetoken endpoint
serves: what ``caisse demo`` and the tests stand up on loopback instead of Google's keys."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SECURETOKEN_NAME = "securetoken.system.gserviceaccount.com"


def self_signed_certificate(
    private: rsa.RSAPrivateKey,
    *,
    common_name: str = SECURETOKEN_NAME,
    now: dt.datetime | None = None,
    valid_before: dt.timedelta = dt.timedelta(days=1),
    valid_after: dt.timedelta = dt.timedelta(days=30),
) -> str:
    """PEM of a certificate for ``private``'s public key, valid from ``now - valid_before`` to
    ``now + valid_after``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = now or dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - valid_before)
        .not_valid_after(start + valid_after)
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
