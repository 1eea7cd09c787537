"""Provider credentials per tenant and environment: validated, encrypted, shown masked.

Stripe keys are checked against the environment of the API key that sets them (``pk_test_`` /
``sk_test_`` / ``rk_test_`` under a test key, ``_live_`` under a live key), as the Saleor app
does; several webhook signing secrets may be active at once so a merchant can roll one.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.clock import Clock
from caisse.crypto import SecretBox, mask
from caisse.errors import Conflict, InvalidRequest, NotFound
from caisse.providers.base import AccountSnapshot
from caisse.providers.stripe.catalog import SUBSCRIBED_EVENT_TYPES
from caisse.storage import models as m
from caisse.storage.db import Database
from caisse.storage.sql import conflict_on_duplicate
from caisse.tenants.services import Caller

MAX_WEBHOOK_SECRETS = 5
_WHSEC = re.compile(r"^whsec_[A-Za-z0-9+/=_-]{8,200}$")
# At least 8 characters after the ``pk_test_``-style prefix: a bare prefix is not a key.
_KEY = re.compile(r"^[a-z]{2}_(?:test|live)_[A-Za-z0-9_]{8,240}$")
_ACCT = re.compile(r"^acct_[A-Za-z0-9]{6,64}$")


def _clean(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{param} is required", param=param)
    return value.strip()


def validate_stripe(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    env = caller.environment
    pk = _clean(body.get("publishable_key"), "publishable_key")
    sk = _clean(body.get("secret_key"), "secret_key")
    if not pk.startswith(f"pk_{env}_") or not _KEY.match(pk):
        raise InvalidRequest(
            f"publishable_key must be a pk_{env}_… key for the {env} environment",
            param="publishable_key",
        )
    if not sk.startswith((f"sk_{env}_", f"rk_{env}_")) or not _KEY.match(sk):
        raise InvalidRequest(
            f"secret_key must be an sk_{env}_… or rk_{env}_… key for the {env} environment",
            param="secret_key",
        )
    raw_secrets = body.get("webhook_secrets")
    if isinstance(raw_secrets, str):
        raw_secrets = [raw_secrets]
    if not isinstance(raw_secrets, list) or not raw_secrets:
        raise InvalidRequest(
            "webhook_secrets is a non-empty list of whsec_… secrets", param="webhook_secrets"
        )
    if len(raw_secrets) > MAX_WEBHOOK_SECRETS:
        raise InvalidRequest(
            f"At most {MAX_WEBHOOK_SECRETS} webhook secrets", param="webhook_secrets"
        )
    secrets: list[str] = []
    for i, s in enumerate(raw_secrets):
        value = _clean(s, f"webhook_secrets[{i}]")
        if not _WHSEC.match(value):
            raise InvalidRequest(
                "A webhook secret starts with whsec_", param=f"webhook_secrets[{i}]"
            )
        if value not in secrets:
            secrets.append(value)
    account = body.get("account_id")
    if account is not None:
        account = _clean(account, "account_id")
        if not _ACCT.match(account):
            raise InvalidRequest("account_id is an acct_… id", param="account_id")
    unknown = set(body) - {"publishable_key", "secret_key", "webhook_secrets", "account_id"}
    if unknown:
        raise InvalidRequest(f"Unknown field {sorted(unknown)[0]!r}", param=sorted(unknown)[0])
    return {
        "publishable_key": pk,
        "secret_key": sk,
        "webhook_secrets": secrets,
        "account_id": account,
    }


def put_stripe(
    session: Session, box: SecretBox, clock: Clock, caller: Caller, body: dict[str, Any]
) -> m.ProviderAccount:
    data = validate_stripe(caller, body)
    if data["account_id"]:
        refuse_foreign_account(session, caller.tenant_id, caller.environment, data["account_id"])
    row = _account(session, caller, "stripe")
    now = clock.now()
    if row is None:
        row = m.ProviderAccount(
            id=ids.new_id("provider_account"),
            tenant_id=caller.tenant_id,
            environment=caller.environment,
            provider="stripe",
            created_at=now,
        )
        session.add(row)
    config = dict(row.config or {})
    # The merchant's own keys end an OAuth connection (the platform key is replaced), and
    # another account's flags say nothing about this one.
    stale = list(OAUTH_FIELDS)
    if config.get("account_id") != data["account_id"]:
        stale += ACCOUNT_FLAGS
    for name in stale:
        config.pop(name, None)
    config.update({"publishable_key": data["publishable_key"], "account_id": data["account_id"]})
    row.config = config
    row.secrets = {
        "secret_key": box.encrypt(data["secret_key"]),
        "webhook_secrets": [box.encrypt(s) for s in data["webhook_secrets"]],
    }
    row.provider_account_id = data["account_id"]
    row.updated_at = now
    with conflict_on_duplicate(ACCOUNT_TAKEN, param="account_id"):
        session.flush()
    return row


OAUTH_FIELDS = ("connected", "connected_via", "connected_at", "deauthorized_at")
ACCOUNT_FLAGS = ("charges_enabled", "payouts_enabled", "requirements_due", "account_observed_at")
ACCOUNT_TAKEN = "This Stripe account is already connected to another tenant"


def refuse_foreign_account(
    session: Session, tenant_id: str, environment: str, account_id: str
) -> None:
    """``Conflict`` when another tenant holds ``account_id`` in ``environment``: its events
    and payments would otherwise reach that tenant (the unique index backs this check)."""
    owner = session.execute(
        select(m.ProviderAccount.tenant_id).where(
            m.ProviderAccount.provider == "stripe",
            m.ProviderAccount.environment == environment,
            m.ProviderAccount.provider_account_id == account_id,
        )
    ).scalar_one_or_none()
    if owner is not None and owner != tenant_id:
        raise Conflict(ACCOUNT_TAKEN, param="account_id")


def connected_by_oauth(row: m.ProviderAccount) -> bool:
    """Whether caisse calls Stripe with the platform's key on behalf of this account."""
    config = row.config or {}
    return config.get("connected_via") == "oauth" and bool(row.provider_account_id)


def record_account_flags(row: m.ProviderAccount, acct: AccountSnapshot) -> bool:
    """Keep what Stripe said of the account (charges, payouts, requirements due), newest
    first; a disconnected account's later news does not re-enable it. True if kept."""
    config = dict(row.config or {})
    seen = config.get("account_observed_at")
    if config.get("deauthorized_at") is not None:
        return False
    if seen is not None and seen > acct.observed_at.timestamp():
        return False
    config.update(
        {
            "charges_enabled": acct.charges_enabled,
            "payouts_enabled": acct.payouts_enabled,
            "requirements_due": list(acct.requirements_due),
            "account_observed_at": acct.observed_at.timestamp(),
        }
    )
    row.config = config
    return True


def stripe_account_header(row: m.ProviderAccount) -> str | None:
    """The ``Stripe-Account`` to send: only for an account connected through OAuth. With the
    merchant's own keys the key already is the account, and Stripe refuses the header from
    an account that is not a Connect platform."""
    return row.provider_account_id if connected_by_oauth(row) else None


def _account(session: Session, caller: Caller, provider: str) -> m.ProviderAccount | None:
    return session.execute(
        select(m.ProviderAccount).where(
            m.ProviderAccount.tenant_id == caller.tenant_id,
            m.ProviderAccount.environment == caller.environment,
            m.ProviderAccount.provider == provider,
        )
    ).scalar_one_or_none()


def get_account(session: Session, caller: Caller, provider: str) -> m.ProviderAccount:
    row = _account(session, caller, provider)
    if row is None:
        raise NotFound(f"No {provider} credentials for the {caller.environment} environment")
    return row


def _due(value: Any) -> list[str] | None:
    """Requirements Stripe says are due; ``None`` until an account read or event told."""
    return [str(x) for x in value] if isinstance(value, list) else None


def webhook_url(public_url: str, provider: str, tenant_id: str) -> str:
    return f"{public_url}/callbacks/v1.0/{provider}/{tenant_id}"


def stripe_view(row: m.ProviderAccount, box: SecretBox, public_url: str) -> dict[str, Any]:
    secrets = row.secrets or {}
    config = row.config or {}
    return {
        "object": "provider.stripe",
        "environment": row.environment,
        "livemode": row.environment == "live",
        "publishable_key": config.get("publishable_key"),
        "secret_key": mask(box.decrypt(secrets["secret_key"])),
        "webhook_secrets": [mask(box.decrypt(s)) for s in secrets.get("webhook_secrets", [])],
        "account_id": config.get("account_id"),
        "connected_via": config.get("connected_via"),
        "charges_enabled": config.get("charges_enabled"),
        "payouts_enabled": config.get("payouts_enabled"),
        "requirements_due": _due(config.get("requirements_due")),
        "webhook_url": webhook_url(public_url, "stripe", row.tenant_id),
        "enabled_events": list(SUBSCRIBED_EVENT_TYPES),
        "updated": int(row.updated_at.timestamp()),
    }


# -- Xsolla -----------------------------------------------------------------------------------

XSOLLA_NOTIFICATIONS = ("user_validation", "payment", "order_paid", "order_canceled", "refund")
MAX_RETURN_URLS = 20
_XSOLLA_PROJECT = re.compile(r"^[0-9]{1,12}$")
_FIREBASE_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about"})


def _secret(value: Any, param: str, *, minimum: int = 8) -> str:
    text = _clean(value, param)
    if not minimum <= len(text) <= 255 or not text.isprintable():
        raise InvalidRequest(f"{param} must be {minimum} to 255 printable characters", param=param)
    return text


def clean_return_url(value: Any, param: str) -> str:
    """An absolute URL (``https://…`` or an app scheme ``mygame://…``) without credentials,
    query or fragment: the form of a return-URL allow-list entry."""
    from urllib.parse import urlsplit

    text = _clean(value, param)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if (
        len(text) > 1000
        or not scheme
        or scheme in _FORBIDDEN_SCHEMES
        or not parts.netloc
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
    ):
        raise InvalidRequest(
            "An allowed return URL is an absolute URL with a host, without query or fragment",
            param=param,
        )
    return text


def validate_xsolla(body: dict[str, Any]) -> dict[str, Any]:
    raw_project = body.get("project_id")
    project = str(raw_project).strip() if isinstance(raw_project, int | str) else ""
    if isinstance(raw_project, bool) or not _XSOLLA_PROJECT.match(project):
        raise InvalidRequest("project_id is Xsolla's numeric project id", param="project_id")
    firebase = _clean(body.get("firebase_project_id"), "firebase_project_id")
    if not _FIREBASE_PROJECT.match(firebase):
        raise InvalidRequest(
            "firebase_project_id is a Firebase project id (6-30 lowercase letters, digits, -)",
            param="firebase_project_id",
        )
    raw_urls = body.get("return_url_allowlist") or []
    if not isinstance(raw_urls, list) or len(raw_urls) > MAX_RETURN_URLS:
        raise InvalidRequest(
            f"return_url_allowlist is a list of at most {MAX_RETURN_URLS} URLs",
            param="return_url_allowlist",
        )
    urls: list[str] = []
    for i, url in enumerate(raw_urls):
        cleaned = clean_return_url(url, f"return_url_allowlist[{i}]")
        if cleaned not in urls:
            urls.append(cleaned)
    # Optional: the merchant (company) id, for the transaction reports reconciliation reads.
    raw_merchant = body.get("merchant_id")
    merchant = str(raw_merchant).strip() if isinstance(raw_merchant, int | str) else ""
    if raw_merchant is not None and (
        isinstance(raw_merchant, bool) or not _XSOLLA_PROJECT.match(merchant)
    ):
        raise InvalidRequest("merchant_id is Xsolla's numeric merchant id", param="merchant_id")
    known = {"project_id", "api_key", "webhook_secret", "firebase_project_id"}
    unknown = set(body) - known - {"return_url_allowlist", "merchant_id"}
    if unknown:
        raise InvalidRequest(f"Unknown field {sorted(unknown)[0]!r}", param=sorted(unknown)[0])
    return {
        "project_id": project,
        "api_key": _secret(body.get("api_key"), "api_key"),
        "webhook_secret": _secret(body.get("webhook_secret"), "webhook_secret"),
        "firebase_project_id": firebase,
        "return_url_allowlist": urls,
        "merchant_id": merchant or None,
    }


def put_xsolla(
    session: Session, box: SecretBox, clock: Clock, caller: Caller, body: dict[str, Any]
) -> m.ProviderAccount:
    """Set the Xsolla project of the key's environment: ``test`` is Xsolla's sandbox."""
    from caisse.xsolla.policy import check_firebase_project

    data = validate_xsolla(body)
    check_firebase_project(data["firebase_project_id"], caller.environment)
    row = _account(session, caller, "xsolla")
    now = clock.now()
    if row is None:
        row = m.ProviderAccount(
            id=ids.new_id("provider_account"),
            tenant_id=caller.tenant_id,
            environment=caller.environment,
            provider="xsolla",
            created_at=now,
        )
        session.add(row)
    row.config = {
        "project_id": data["project_id"],
        "firebase_project_id": data["firebase_project_id"],
        "return_url_allowlist": data["return_url_allowlist"],
        "merchant_id": data["merchant_id"],
    }
    row.secrets = {
        "api_key": box.encrypt(data["api_key"]),
        "webhook_secret": box.encrypt(data["webhook_secret"]),
    }
    row.provider_account_id = data["project_id"]
    row.updated_at = now
    session.flush()
    return row


def xsolla_view(row: m.ProviderAccount, box: SecretBox, public_url: str) -> dict[str, Any]:
    secrets = row.secrets or {}
    config = row.config or {}
    return {
        "object": "provider.xsolla",
        "environment": row.environment,
        "livemode": row.environment == "live",
        "sandbox": row.environment == "test",
        "project_id": config.get("project_id"),
        "merchant_id": config.get("merchant_id"),
        "api_key": mask(box.decrypt(secrets["api_key"])),
        "webhook_secret": mask(box.decrypt(secrets["webhook_secret"])),
        "firebase_project_id": config.get("firebase_project_id"),
        "return_url_allowlist": list(config.get("return_url_allowlist") or []),
        "webhook_url": webhook_url(public_url, "xsolla", row.tenant_id),
        "notification_types": list(XSOLLA_NOTIFICATIONS),
        "updated": int(row.updated_at.timestamp()),
    }


@dataclass(frozen=True, slots=True)
class XsollaAccount:
    """A tenant's decrypted Xsolla settings for one environment (never logged, never shown)."""

    tenant_id: str
    environment: str
    project_id: str
    api_key: str
    webhook_secret: str
    firebase_project_id: str
    return_url_allowlist: tuple[str, ...]
    merchant_id: str | None = None  # needed by reconciliation (merchant transaction reports)

    @property
    def sandbox(self) -> bool:
        return self.environment == "test"


def xsolla_accounts(session: Session, box: SecretBox, tenant_id: str) -> dict[str, XsollaAccount]:
    """The tenant's Xsolla settings by environment (empty when none is configured)."""
    rows = session.scalars(
        select(m.ProviderAccount).where(
            m.ProviderAccount.tenant_id == tenant_id, m.ProviderAccount.provider == "xsolla"
        )
    ).all()
    out: dict[str, XsollaAccount] = {}
    for row in rows:
        config, secrets = row.config or {}, row.secrets or {}
        out[row.environment] = XsollaAccount(
            tenant_id=row.tenant_id,
            environment=row.environment,
            project_id=str(config["project_id"]),
            api_key=box.decrypt(secrets["api_key"]),
            webhook_secret=box.decrypt(secrets["webhook_secret"]),
            firebase_project_id=str(config["firebase_project_id"]),
            return_url_allowlist=tuple(config.get("return_url_allowlist") or ()),
            merchant_id=str(config["merchant_id"]) if config.get("merchant_id") else None,
        )
    return out


@dataclass(frozen=True, slots=True)
class StripeSecrets:
    """What ingest needs to verify a tenant's Stripe events, per environment."""

    tenant_exists: bool
    webhook_secrets: dict[str, tuple[str, ...]]
    account_ids: dict[str, str | None]


class StripeSecretCache:
    """Decrypted webhook secrets by tenant, kept briefly in memory so the ingest path does one
    dictionary lookup instead of a query and a decryption per event. Entries live ``ttl``
    seconds; a failed verification may refresh once per ``refresh_interval`` so a secret just
    added in another process works at once."""

    def __init__(
        self, db: Database, box: SecretBox, *, ttl: float = 30.0, refresh_interval: float = 1.0
    ) -> None:
        self._db, self._box = db, box
        self._ttl, self._refresh_interval = ttl, refresh_interval
        self._entries: dict[str, tuple[float, StripeSecrets]] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str, *, refresh: bool = False) -> StripeSecrets:
        now = time.monotonic()
        entry = self._entries.get(tenant_id)
        if entry is not None:
            loaded_at, value = entry
            fresh = now - loaded_at < self._ttl
            if fresh and (not refresh or now - loaded_at < self._refresh_interval):
                return value
        value = self._load(tenant_id)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[tenant_id] = (now, value)
        return value

    async def aget(self, tenant_id: str, *, refresh: bool = False) -> StripeSecrets:
        """:meth:`get` for the event loop: a fresh entry is a dictionary lookup, a miss reads
        the database in a thread, so an unknown tenant id or a slow database never stalls
        every other request (``/healthz`` included) behind it."""
        entry = self._entries.get(tenant_id)
        if entry is not None and not refresh and time.monotonic() - entry[0] < self._ttl:
            return entry[1]
        return await asyncio.to_thread(self.get, tenant_id, refresh=refresh)

    def invalidate(self, tenant_id: str) -> None:
        self._entries.pop(tenant_id, None)

    def _load(self, tenant_id: str) -> StripeSecrets:
        with self._db.read() as s:
            if s.get(m.Tenant, tenant_id) is None:
                return StripeSecrets(False, {}, {})
            rows = (
                s.execute(
                    select(m.ProviderAccount).where(
                        m.ProviderAccount.tenant_id == tenant_id,
                        m.ProviderAccount.provider == "stripe",
                    )
                )
                .scalars()
                .all()
            )
            secrets: dict[str, tuple[str, ...]] = {}
            accounts: dict[str, str | None] = {}
            for row in rows:
                secrets[row.environment] = tuple(
                    self._box.decrypt(x) for x in (row.secrets or {}).get("webhook_secrets", [])
                )
                accounts[row.environment] = row.provider_account_id
            return StripeSecrets(True, secrets, accounts)
