"""Stripe Connect onboarding ("Connect with Stripe", OAuth) with caisse's operator as platform.

The ``state`` sent to Stripe is signed (HMAC-SHA256 under a key derived from the master key),
names the tenant and environment that asked, expires after ``STATE_TTL`` and is single use (its
nonce is recorded when the callback consumes it), so a forged, altered, stale or replayed
callback is refused. The code is exchanged with ``stripe.OAuth.token`` using the platform's
secret key of that environment (``CAISSE_STRIPE_CONNECT_SECRET_KEY``); the connected ``acct_``
is stored for the tenant, and from then on caisse calls Stripe with the platform key on behalf
of that account and takes its events from the platform's Connect endpoint
(``/callbacks/v1.0/stripe/connect``), routed to the tenant by their ``account``.

An ``acct_`` belongs to one tenant per environment: connecting (or typing) an account another
tenant holds is refused with ``409`` after the code exchange, and the platform's authorization
is left as it is (it serves the tenant that holds the account). The state is not tied to a
browser cookie: ``GET /v1/connect/stripe/authorize`` is called by the platform's server with
the tenant's API key, not by the merchant's browser, so caisse has no browser session to bind
to; a platform that sends its merchants there should bind the URL to its own session (see
docs/stripe.md). The account is read right after the exchange (``GET /v1/account`` on its
behalf) so its charges, payouts and requirements are known at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets as pysecrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.config import Settings
from caisse.errors import CaisseError, InvalidRequest, PermissionDenied
from caisse.providers.stripe.client import StripeGateway
from caisse.providers.stripe.mapping import account_snapshot
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.storage.sql import conflict_on_duplicate, insert_ignore
from caisse.tenants.credentials import (
    ACCOUNT_TAKEN,
    record_account_flags,
    refuse_foreign_account,
)
from caisse.tenants.services import Caller

log = logging.getLogger("caisse.connect")

STATE_TTL = dt.timedelta(minutes=15)
CALLBACK_PATH = "/v1/connect/stripe/callback"
SCOPE = "read_write"
_REFUSED = "The Connect authorization state is invalid, expired or already used"


def platform_key(settings: Settings, environment: str) -> str:
    """The platform's secret key for ``environment`` (``sk_test_``/``rk_test_`` or live)."""
    if not settings.stripe_connect_client_id:
        raise InvalidRequest("Stripe Connect is not configured (CAISSE_STRIPE_CONNECT_CLIENT_ID)")
    for secret in settings.stripe_connect_secret_keys:
        key = secret.reveal()
        if key.startswith((f"sk_{environment}_", f"rk_{environment}_")):
            return key
    raise InvalidRequest(
        f"Stripe Connect has no {environment} platform key (CAISSE_STRIPE_CONNECT_SECRET_KEY)"
    )


def _platform_gateway(rt: Runtime, environment: str) -> StripeGateway:
    return StripeGateway(
        platform_key(rt.settings, environment),
        api_base=rt.settings.stripe_api_base,
        client_id=rt.settings.stripe_connect_client_id,
    )


def authorize(rt: Runtime, caller: Caller) -> dict[str, Any]:
    """The OAuth address to send the merchant to, with a fresh signed state."""
    expires = rt.clock.now() + STATE_TTL
    state = sign_state(rt.settings, caller.tenant_id, caller.environment, expires)
    url = _platform_gateway(rt, caller.environment).oauth_authorize_url(
        state=state, redirect_uri=rt.settings.public_url + CALLBACK_PATH, scope=SCOPE
    )
    return {
        "object": "connect.authorization",
        "url": url,
        "state": state,
        "expires": int(expires.timestamp()),
        "livemode": caller.environment == "live",
    }


def complete(rt: Runtime, *, code: str, state: str) -> dict[str, Any]:
    """Consume the state, exchange the code and store the connected account."""
    tenant_id, environment, nonce = verify_state(rt.settings, state, now=rt.clock.now())
    with rt.db.write() as s:
        stmt = insert_ignore(s, m.ConnectState.__table__, conflict=["nonce"])  # type: ignore[arg-type]
        inserted = s.execute(
            stmt.returning(m.ConnectState.nonce),
            {
                "nonce": nonce,
                "tenant_id": tenant_id,
                "environment": environment,
                "used_at": rt.clock.now(),
            },
        ).first()
        if inserted is None:  # the nonce was consumed before: a replay
            raise PermissionDenied(_REFUSED)
    token = _platform_gateway(rt, environment).oauth_token(code)
    account_id = token.get("stripe_user_id")
    if not isinstance(account_id, str) or not account_id.startswith("acct_"):
        raise InvalidRequest("Stripe returned no connected account")
    if bool(token.get("livemode")) != (environment == "live"):
        raise InvalidRequest(f"The account was connected in the wrong mode for {environment}")
    with rt.db.write() as s:
        row = store_connection(
            s, rt, tenant_id, environment, account_id, token.get("stripe_publishable_key")
        )
        stored_id = row.provider_account_id
    flags = _read_account(rt, tenant_id, environment, account_id)
    return {
        "object": "connect.account",
        "tenant": tenant_id,
        "livemode": environment == "live",
        "account_id": stored_id,
        "connected": True,
        **flags,
    }


def _read_account(rt: Runtime, tenant_id: str, environment: str, account_id: str) -> dict[str, Any]:
    """Read the new account's capabilities at once (charges, payouts, requirements due)
    rather than leave them unknown until its first ``account.updated``. A failed read only
    leaves them unknown: the connection itself is made."""
    gateway = StripeGateway(
        platform_key(rt.settings, environment),
        api_base=rt.settings.stripe_api_base,
        account=account_id,
    )
    try:
        acct = account_snapshot(gateway.retrieve_account(), rt.clock.now())
    except CaisseError as exc:
        log.warning(
            "connected account not read",
            extra={
                "action": "connect.account_unread",
                "tenant_id": tenant_id,
                "error": exc.message,
            },
        )
        return {"charges_enabled": None, "payouts_enabled": None, "requirements_due": None}
    with rt.db.write() as s:
        row = s.execute(
            select(m.ProviderAccount).where(
                m.ProviderAccount.tenant_id == tenant_id,
                m.ProviderAccount.environment == environment,
                m.ProviderAccount.provider == "stripe",
                m.ProviderAccount.provider_account_id == acct.account_id,
            )
        ).scalar_one_or_none()
        if row is not None:
            record_account_flags(row, acct)
    return {
        "charges_enabled": acct.charges_enabled,
        "payouts_enabled": acct.payouts_enabled,
        "requirements_due": list(acct.requirements_due),
    }


def store_connection(
    s: Session,
    rt: Runtime,
    tenant_id: str,
    environment: str,
    account_id: str,
    publishable_key: Any,
) -> m.ProviderAccount:
    now = rt.clock.now()
    refuse_foreign_account(s, tenant_id, environment, account_id)
    row = s.execute(
        select(m.ProviderAccount).where(
            m.ProviderAccount.tenant_id == tenant_id,
            m.ProviderAccount.environment == environment,
            m.ProviderAccount.provider == "stripe",
        )
    ).scalar_one_or_none()
    if row is None:
        row = m.ProviderAccount(
            id=ids.new_id("provider_account"),
            tenant_id=tenant_id,
            environment=environment,
            provider="stripe",
            created_at=now,
        )
        s.add(row)
    config = dict(row.config or {})
    for stale in ("charges_enabled", "payouts_enabled", "requirements_due", "deauthorized_at"):
        config.pop(stale, None)  # the new account's flags come with its account.updated
    config.update(
        {
            "account_id": account_id,
            "connected": True,
            "connected_via": "oauth",
            "connected_at": int(now.timestamp()),
            "publishable_key": publishable_key
            if isinstance(publishable_key, str)
            else config.get("publishable_key"),
        }
    )
    row.config = config
    # Connect events reach caisse through the platform endpoint, signed with its own secret.
    row.secrets = {
        "secret_key": rt.box.encrypt(platform_key(rt.settings, environment)),
        "webhook_secrets": list((row.secrets or {}).get("webhook_secrets", [])),
    }
    row.provider_account_id = account_id
    row.updated_at = now
    with conflict_on_duplicate(ACCOUNT_TAKEN, param="account_id"):
        s.flush()
    return row


def connected_tenant(s: Session, account_id: str, environment: str) -> str | None:
    """The tenant an ``acct_`` is connected to in ``environment`` (routing Connect events);
    at most one, by the unique index on (environment, account) of Stripe rows."""
    return s.execute(
        select(m.ProviderAccount.tenant_id).where(
            m.ProviderAccount.provider == "stripe",
            m.ProviderAccount.provider_account_id == account_id,
            m.ProviderAccount.environment == environment,
        )
    ).scalar_one_or_none()


# -- the signed state ---------------------------------------------------------------------------


def _keys(settings: Settings) -> list[bytes]:
    return [
        hashlib.sha256(b"caisse.connect.state\x00" + k.reveal().encode()).digest()
        for k in settings.master_keys
    ]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_state(settings: Settings, tenant_id: str, environment: str, expires: dt.datetime) -> str:
    payload = json.dumps(
        {
            "t": tenant_id,
            "e": environment,
            "x": int(expires.timestamp()),
            "n": pysecrets.token_urlsafe(18),
        },
        separators=(",", ":"),
    ).encode()
    mac = hmac.new(_keys(settings)[0], payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify_state(settings: Settings, state: str, *, now: dt.datetime) -> tuple[str, str, str]:
    """(tenant, environment, nonce) of a genuine, unexpired state; PermissionDenied otherwise."""
    try:
        encoded, mac_text = state.split(".")
        payload, mac = _unb64(encoded), _unb64(mac_text)
    except (ValueError, TypeError):
        raise PermissionDenied(_REFUSED) from None
    if not any(
        hmac.compare_digest(hmac.new(k, payload, hashlib.sha256).digest(), mac)
        for k in _keys(settings)
    ):
        raise PermissionDenied(_REFUSED)
    data = json.loads(payload)
    if int(data["x"]) < now.timestamp():
        raise PermissionDenied(_REFUSED)
    return str(data["t"]), str(data["e"]), str(data["n"])
