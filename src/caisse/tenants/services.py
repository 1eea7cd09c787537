"""Tenant creation and API-key authentication.

A tenant gets one ``ck_test_`` and one ``ck_live_`` key at creation; they are shown once and
stored as SHA-256 hashes. The key's prefix selects the environment, as Stripe's keys do.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.clock import Clock
from caisse.crypto import hash_api_key, mask, new_api_key
from caisse.errors import AuthenticationError, InvalidRequest, NotFound
from caisse.invoices.snapshot import clean_text
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
    "legal_form",  # "SAS", "SARL", "EI"… (French companies print it with the share capital)
    "share_capital",  # "10 000 €", printed as "SAS au capital de 10 000 €"
    "rcs",  # "RCS Nantes 123 456 789": city of the trade register and SIREN
    "logo",  # base64 PNG or JPEG, printed on invoices
)
_MULTILINE = ("invoice_footer", "vat_exemption_reason")
_RCS = re.compile(r"^(?:R\.?C\.?S\.?\s+)?(?P<city>[^\d]*[^\d\s])\s+(?P<siren>(?:\d\s*){9})$", re.I)
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
        # Control characters cannot be printed nor carried by Factur-X XML: dropped here.
        out[key] = clean_text(value, single_line=key not in _MULTILINE) if value else value
    if out.get("country"):
        country = str(out["country"]).upper()
        if len(country) != 2 or not country.isalpha():
            raise InvalidRequest("country is an ISO 3166-1 alpha-2 code", param="legal.country")
        out["country"] = country
    if out.get("language") and out["language"] not in ("fr", "en"):
        raise InvalidRequest("language is 'fr' or 'en'", param="legal.language")
    if out.get("rcs"):
        match = _RCS.match(out["rcs"])
        if match is None:
            raise InvalidRequest(
                "rcs is the trade register's city and the SIREN, e.g. 'RCS Nantes 123 456 789'",
                param="legal.rcs",
            )
        siren = re.sub(r"\s", "", match["siren"])
        out["rcs"] = f"RCS {match['city']} {siren[:3]} {siren[3:6]} {siren[6:]}"
    if out.get("share_capital") and not any(ch.isdigit() for ch in out["share_capital"]):
        raise InvalidRequest(
            "share_capital is an amount, e.g. '10 000 €'", param="legal.share_capital"
        )
    return out


def check_legal(legal: dict[str, Any]) -> None:
    """Checks across fields, on the details as they will be stored: a French seller's SIREN
    (9 digits) or SIRET (14), and the same SIREN in ``rcs``."""
    if (legal.get("country") or "FR") != "FR":
        return
    digits = re.sub(r"\s", "", legal.get("registration_number") or "")
    if digits and (not digits.isdigit() or len(digits) not in (9, 14)):
        raise InvalidRequest(
            "A French registration_number is a SIREN (9 digits) or a SIRET (14 digits)",
            param="legal.registration_number",
        )
    rcs = re.sub(r"\D", "", legal.get("rcs") or "")
    if digits and rcs and rcs != digits[:9]:
        raise InvalidRequest("rcs and registration_number name different SIRENs", param="legal.rcs")


def create_tenant(
    session: Session, clock: Clock, name: str, legal: dict[str, Any] | None = None
) -> tuple[m.Tenant, dict[str, str]]:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidRequest("A tenant needs a name of 1 to 200 characters", param="name")
    now = clock.now()
    cleaned = clean_legal(legal)
    check_legal(cleaned)
    tenant = m.Tenant(id=ids.new_id("tenant"), name=name, legal=cleaned, created_at=now)
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
        merged = {k: v for k, v in merged.items() if v not in (None, "")}
        check_legal(merged)
        tenant.legal = merged
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
