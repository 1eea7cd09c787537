"""Tenant creation and API-key authentication.

A tenant gets one ``ck_test_`` and one ``ck_live_`` key at creation; they are shown once and
stored as SHA-256 hashes. The key's prefix selects the environment, as Stripe's keys do.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.clock import Clock
from caisse.crypto import hash_api_key, mask, new_api_key
from caisse.errors import AuthenticationError, InvalidRequest, NotFound
from caisse.storage import models as m

ENVIRONMENTS = ("test", "live")
LEGAL_FIELDS = (
    "legal_name",
    "address_line1",
    "address_line2",
    "postcode",
    "city",
    "country",
    "vat_number",
    "registration_number",
    "email",
    "phone",
    "invoice_footer",
    "language",
    "vat_exemption_reason",
    "logo",  # base64 PNG or JPEG, printed on invoices
)
LOGO_MAX_BYTES = 256 * 1024
_LOGO_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request is from: a tenant, in one environment."""

    tenant_id: str
    environment: str

    @property
    def livemode(self) -> bool:
        return self.environment == "live"


def logo_type(data: bytes) -> str | None:
    """``image/png`` or ``image/jpeg`` from the file's magic bytes; None otherwise."""
    return next((kind for magic, kind in _LOGO_TYPES.items() if data.startswith(magic)), None)


def _clean_logo(value: str) -> str:
    try:
        data = base64.b64decode(value, validate=True)
    except ValueError:
        raise InvalidRequest("logo must be base64", param="legal.logo") from None
    if len(data) > LOGO_MAX_BYTES:
        raise InvalidRequest(
            f"logo is larger than {LOGO_MAX_BYTES // 1024} KiB", param="legal.logo"
        )
    if logo_type(data) is None:
        raise InvalidRequest("logo must be a PNG or JPEG image", param="legal.logo")
    return base64.b64encode(data).decode()


def clean_legal(legal: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (legal or {}).items():
        if key not in LEGAL_FIELDS:
            raise InvalidRequest(f"Unknown legal field {key!r}", param=f"legal.{key}")
        if value is not None and not isinstance(value, str):
            raise InvalidRequest("Legal fields are strings", param=f"legal.{key}")
        if key == "logo" and value:
            out[key] = _clean_logo(value)
            continue
        if isinstance(value, str) and len(value) > 500:
            raise InvalidRequest("Legal field too long", param=f"legal.{key}")
        out[key] = value.strip() if isinstance(value, str) else value
    if out.get("country"):
        country = str(out["country"]).upper()
        if len(country) != 2 or not country.isalpha():
            raise InvalidRequest("country is an ISO 3166-1 alpha-2 code", param="legal.country")
        out["country"] = country
    if out.get("language") and out["language"] not in ("fr", "en"):
        raise InvalidRequest("language is 'fr' or 'en'", param="legal.language")
    return out


def create_tenant(
    session: Session, clock: Clock, name: str, legal: dict[str, Any] | None = None
) -> tuple[m.Tenant, dict[str, str]]:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidRequest("A tenant needs a name of 1 to 200 characters", param="name")
    now = clock.now()
    tenant = m.Tenant(id=ids.new_id("tenant"), name=name, legal=clean_legal(legal), created_at=now)
    session.add(tenant)
    session.flush()
    keys: dict[str, str] = {}
    for env in ENVIRONMENTS:
        key = new_api_key(env)
        keys[env] = key
        session.add(
            m.ApiKey(
                tenant_id=tenant.id,
                environment=env,
                key_hash=hash_api_key(key),
                masked=mask(key) or "",
                created_at=now,
            )
        )
    return tenant, keys


def authenticate(session: Session, key: str | None) -> Caller:
    if not key or not key.startswith(("ck_test_", "ck_live_")) or len(key) > 200:
        raise AuthenticationError("Invalid API key")
    row = session.execute(
        select(m.ApiKey.tenant_id, m.ApiKey.environment).where(
            m.ApiKey.key_hash == hash_api_key(key), m.ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        raise AuthenticationError("Invalid API key")
    return Caller(tenant_id=row[0], environment=row[1])


def get_tenant(session: Session, tenant_id: str) -> m.Tenant:
    tenant = session.get(m.Tenant, tenant_id)
    if tenant is None:
        raise NotFound("No such tenant", param="tenant_id")
    return tenant


def update_tenant(
    session: Session, tenant_id: str, *, name: str | None, legal: dict[str, Any] | None
) -> m.Tenant:
    """Rename and/or merge legal details (a null value removes a field). Issued invoices keep
    the details they were issued with (they print a snapshot)."""
    tenant = get_tenant(session, tenant_id)
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidRequest("A tenant needs a name of 1 to 200 characters", param="name")
        tenant.name = name
    if legal is not None:
        merged = {**(tenant.legal or {}), **clean_legal(legal)}
        tenant.legal = {k: v for k, v in merged.items() if v not in (None, "")}
    session.flush()
    return tenant


def legal_view(legal: dict[str, Any] | None) -> dict[str, Any]:
    """Legal details with the logo summarised (type and size), not echoed back in full."""
    out = dict(legal or {})
    if out.get("logo"):
        data = base64.b64decode(out["logo"])
        out["logo"] = {"content_type": logo_type(data), "size": len(data)}
    return out


def tenant_view(tenant: m.Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "object": "tenant",
        "name": tenant.name,
        "legal": legal_view(tenant.legal),
        "created": int(tenant.created_at.timestamp()),
    }
