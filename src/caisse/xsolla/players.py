"""The player side: a Firebase-authenticated game client buys one catalogue SKU through Xsolla
Pay Station and follows its order.

Rules (research/xsolla-firebase.md §5, the sample function's weaknesses turned around):

- The player is the verified ID token's ``sub``; a uid or email in the request body is never
  read. The email sent to Xsolla comes from the token, and only when ``email_verified``.
- The environment is the request's ``mode`` (``live`` by default, ``test`` = Xsolla sandbox); the
  token is checked against that environment's Firebase project, and ``sandbox`` is never the
  client's choice beyond picking the environment the tenant configured.
- The order is stored (player, SKU, quantity, expected price) *before* Xsolla is called, and the
  Xsolla call is made with no database lock held. If Xsolla refuses or cannot be reached, the
  order is removed and the idempotency key released, so the player can simply retry.
- ``Idempotency-Key`` is scoped to the player: the same key and body replays the first answer
  (one Xsolla call); the same key with another body is a 409.
- **One Xsolla call per key.** A claim in progress answers 409 for ``STALE_AFTER`` (30 s); after
  that a retry may resume it. So the Xsolla call must be over before the claim can go stale: it
  runs under a total deadline of the client's 10 s, cut further to what is left of
  ``STALE_AFTER - CLAIM_MARGIN`` since the claim was taken. A resume renews the claim in the
  same locked transaction, so two retries cannot both resume it.
- The bearer token is checked (signature, times, issuer) before the tenant is looked up: an
  anonymous caller gets 401 and learns nothing about which tenants or environments exist.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets as pysecrets
from dataclasses import dataclass
from typing import Any, Final

import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.auth.firebase import FirebaseIdentity, FirebaseVerifier
from caisse.catalog.services import check_sku, find_item
from caisse.domain.states import OrderStatus, PaymentPhase
from caisse.errors import (
    AuthenticationError,
    InvalidRequest,
    NotFound,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
)
from caisse.money import to_decimal
from caisse.orders import idempotency
from caisse.providers.xsolla.client import (
    XsollaClient,
    XsollaRejected,
    XsollaThrottled,
    paystation_url,
)
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.storage.sql import insert_ignore
from caisse.tenants.credentials import XsollaAccount, xsolla_accounts
from caisse.tenants.services import Caller
from caisse.xsolla import entitlements
from caisse.xsolla.policy import ENVIRONMENTS, MAX_QUANTITY, player_status, return_url_allowed

# Time kept between the end of the Xsolla call and the moment the claim may be resumed, for the
# database writes that follow the call.
CLAIM_MARGIN: Final = dt.timedelta(seconds=5)


class UpstreamAuth(ProviderError):
    """Xsolla refused the tenant's project id / API key: a set-up fault, not the player's."""

    code = "upstream_auth"


class UpstreamRefused(ProviderError):
    """Xsolla refused the token request (e.g. 1417 SKU missing from its catalogue, 1421 free)."""

    code = "upstream_refused"


@dataclass(frozen=True, slots=True)
class Player:
    uid: str
    email: str | None  # only a verified email


def check_mode(mode: str | None) -> str:
    value = mode or "live"
    if value not in ENVIRONMENTS:
        raise InvalidRequest("mode is 'live' or 'test'", param="mode")
    return value


def load_account(rt: Runtime, tenant_id: str, environment: str) -> XsollaAccount:
    with rt.db.read() as s:
        if s.get(m.Tenant, tenant_id) is None:
            raise NotFound("No such tenant", param="tenant_id")
        account = xsolla_accounts(s, rt.box, tenant_id).get(environment)
    if account is None:
        raise NotFound(f"Xsolla is not configured for the {environment} environment")
    return account


def bearer(authorization: str | None) -> str:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationError("A Firebase ID token is required: Authorization: Bearer <token>")
    return value.strip()


async def identify(
    verifier: FirebaseVerifier, authorization: str | None, environment: str
) -> FirebaseIdentity:
    """The bearer token checked for any project (step one, before the tenant is looked up);
    AuthenticationError (401) or KeysUnavailable (503)."""
    return await verifier.verify(bearer(authorization), None, environment=environment)


def bind(identity: FirebaseIdentity, account: XsollaAccount) -> Player:
    """Step two: the token must be for the account's Firebase project (else 401)."""
    identity.require_project(account.firebase_project_id)
    return Player(identity.uid, identity.email if identity.email_verified else None)


# -- payment token -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenRequest:
    sku: str
    quantity: int
    return_url: str | None
    mode: str

    def fingerprint(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "quantity": self.quantity,
            "return_url": self.return_url,
            "mode": self.mode,
        }


@dataclass(frozen=True, slots=True)
class _Prepared:
    order_id: str
    currency: str = ""
    replay: tuple[int, dict[str, Any]] | None = None
    has_token: bool = False
    claimed_at: dt.datetime | None = None  # when this request took (or renewed) the claim


def _scope(uid: str) -> str:
    return "xsolla-token:" + hashlib.sha256(uid.encode()).hexdigest()[:40]


async def create_payment_token(
    rt: Runtime,
    client: XsollaClient,
    account: XsollaAccount,
    player: Player,
    req: TokenRequest,
    *,
    user_ip: str | None,
    idempotency_key: str | None,
) -> tuple[int, dict[str, Any]]:
    """Store the order, get its Pay Station token from Xsolla, answer ``{token, order_id,
    xsolla_order_id, paystation_url}``."""
    check_sku(req.sku)
    if not 1 <= req.quantity <= MAX_QUANTITY:
        raise InvalidRequest(f"quantity is between 1 and {MAX_QUANTITY}", param="quantity")
    if req.return_url is not None and not return_url_allowed(
        req.return_url, account.return_url_allowlist
    ):
        raise InvalidRequest("return_url is not in the allowed list", param="return_url")
    caller = Caller(account.tenant_id, account.environment)
    scope = _scope(player.uid)
    key = idempotency_key or f"auto_{pysecrets.token_hex(16)}"

    prepared = await anyio.to_thread.run_sync(
        _prepare, rt, account, player, req, caller, scope, key
    )
    if prepared.replay is not None:
        return prepared.replay
    if not prepared.has_token:
        try:
            budget = _call_budget(rt, prepared.claimed_at)
            result = await client.create_payment_token(
                account.project_id,
                account.api_key,
                user_id=player.uid,
                sku=req.sku,
                quantity=req.quantity,
                sandbox=account.sandbox,
                external_id=prepared.order_id,
                user_email=player.email,
                return_url=req.return_url,
                currency=prepared.currency.upper(),
                user_ip=user_ip,
                deadline=budget,
            )
        except XsollaThrottled:
            await anyio.to_thread.run_sync(_abandon, rt, prepared.order_id, caller, scope, key)
            raise  # 503 with Retry-After: transient, the player retries
        except XsollaRejected as exc:
            await anyio.to_thread.run_sync(_abandon, rt, prepared.order_id, caller, scope, key)
            if exc.status_code in (401, 403):
                raise UpstreamAuth(
                    "Xsolla refused the merchant's credentials; the merchant must fix them"
                ) from None
            suffix = f" (Xsolla error {exc.error_code})" if exc.error_code is not None else ""
            raise UpstreamRefused(f"Xsolla refused the payment token request{suffix}") from None
        except (ProviderError, ProviderRejected):
            await anyio.to_thread.run_sync(_abandon, rt, prepared.order_id, caller, scope, key)
            raise
        await anyio.to_thread.run_sync(
            _attach, rt, prepared.order_id, result.token, result.xsolla_order_id
        )
    return await anyio.to_thread.run_sync(_finish, rt, prepared.order_id, caller, scope, key)


def _call_budget(rt: Runtime, claimed_at: dt.datetime | None) -> float:
    """Seconds the Xsolla call may take so that it is over before the claim can be resumed."""
    if claimed_at is None:
        raise ProviderTimeout("The payment token request started too long ago")
    left = idempotency.STALE_AFTER - CLAIM_MARGIN - (rt.clock.now() - claimed_at)
    if left <= dt.timedelta(0):
        raise ProviderTimeout("The payment token request started too long ago")
    return left.total_seconds()


def _prepare(
    rt: Runtime,
    account: XsollaAccount,
    player: Player,
    req: TokenRequest,
    caller: Caller,
    scope: str,
    key: str,
) -> _Prepared:
    now = rt.clock.now()
    with rt.db.write() as s:
        claim = idempotency.claim(s, caller, scope, key, req.fingerprint(), now=now)
        if claim.replay is not None:
            order_id = str(claim.replay[1]["order_id"])
            return _Prepared(order_id, replay=(claim.replay[0], token_view(s, rt, order_id)))
        if claim.resume is not None:
            idempotency.renew(s, caller, scope, key, now=now)
            order_id = str(claim.resume["order_id"])
            xo = s.get(m.XsollaOrder, order_id)
            if xo is not None:
                return _Prepared(
                    order_id, xo.currency, has_token=xo.token is not None, claimed_at=now
                )
        item = find_item(s, account.tenant_id, account.environment, req.sku)
        if item is None:
            raise NotFound(f"No such SKU: {req.sku!r}", param="sku")
        if item.status != "available":
            raise InvalidRequest(f"SKU {req.sku!r} is not available", param="sku")
        order_id = ids.new_id("order")
        total = item.amount * req.quantity
        s.add(
            m.Order(
                id=order_id,
                tenant_id=account.tenant_id,
                environment=account.environment,
                reference=None,
                status=OrderStatus.OPEN.value,
                phase=PaymentPhase.OPEN.value,
                currency=item.currency,
                amount_total=total,
                customer={"uid": player.uid, **({"email": player.email} if player.email else {})},
                lines={
                    "data": [
                        {
                            "sku": item.sku,
                            "description": item.name,
                            "quantity": req.quantity,
                            "unit_amount": item.amount,
                            "amount": total,
                            "tax_rate": None,
                        }
                    ]
                },
                metadata_={"xsolla_project_id": account.project_id},
                provider="xsolla",
                provider_account_id=account.project_id,
                created_at=now,
                updated_at=now,
            )
        )
        s.flush()
        s.add(
            m.XsollaOrder(
                order_id=order_id,
                tenant_id=account.tenant_id,
                environment=account.environment,
                uid=player.uid,
                sku=item.sku,
                quantity=req.quantity,
                unit_amount=item.amount,
                currency=item.currency,
                project_id=account.project_id,
                sandbox=account.sandbox,
                return_url=req.return_url,
                created_at=now,
                updated_at=now,
            )
        )
        s.add(
            m.OrderEvent(
                order_id=order_id,
                type="order.created",
                data={"amount_total": total, "currency": item.currency, "provider": "xsolla"},
                created_at=now,
            )
        )
        s.execute(
            insert_ignore(
                s,
                m.XsollaPlayer.__table__,  # type: ignore[arg-type]
                conflict=["tenant_id", "environment", "uid"],
            ),
            [
                {
                    "tenant_id": account.tenant_id,
                    "environment": account.environment,
                    "uid": player.uid,
                    "first_seen_at": now,
                }
            ],
        )
        idempotency.note_progress(s, caller, scope, key, {"order_id": order_id})
    return _Prepared(order_id, item.currency, claimed_at=now)


def _abandon(rt: Runtime, order_id: str, caller: Caller, scope: str, key: str) -> None:
    with rt.db.write() as s:
        xo = s.get(m.XsollaOrder, order_id)
        if xo is not None and xo.token is None:
            s.delete(xo)
            s.flush()
            row = s.get(m.Order, order_id)
            if row is not None:
                s.delete(row)
        idempotency.release(s, caller, scope, key)


def _attach(rt: Runtime, order_id: str, token: str, xsolla_order_id: int) -> None:
    now = rt.clock.now()
    with rt.db.write() as s:
        xo = s.get(m.XsollaOrder, order_id)
        row = s.get(m.Order, order_id)
        if xo is None or row is None:
            raise NotFound("Order vanished during creation")
        xo.token = rt.box.encrypt(token)
        xo.xsolla_order_id = xsolla_order_id
        xo.updated_at = now
        row.provider_payment_id = str(xsolla_order_id)
        row.updated_at = now


def _finish(
    rt: Runtime, order_id: str, caller: Caller, scope: str, key: str
) -> tuple[int, dict[str, Any]]:
    with rt.db.write() as s:
        view = token_view(s, rt, order_id)
        # The stored answer holds no token: a replay re-reads it (encrypted at rest).
        idempotency.finish(s, caller, scope, key, 201, {"order_id": order_id})
    return 201, view


def token_view(s: Session, rt: Runtime, order_id: str) -> dict[str, Any]:
    xo = s.get(m.XsollaOrder, order_id)
    if xo is None or xo.token is None or xo.xsolla_order_id is None:
        raise NotFound("Order vanished during creation")
    token = rt.box.decrypt(xo.token)
    return {
        "object": "xsolla.payment_token",
        "token": token,
        "order_id": xo.order_id,
        "xsolla_order_id": xo.xsolla_order_id,
        "paystation_url": paystation_url(token, sandbox=xo.sandbox),
        "sandbox": xo.sandbox,
        "mode": xo.environment,
    }


# -- order tracking and entitlements -------------------------------------------------------------


def order_status_view(s: Session, xo: m.XsollaOrder, order: m.Order) -> dict[str, Any]:
    """What the game client sees of its order (Xsolla's vocabulary, plus what was granted)."""
    granted = entitlements.for_order(s, xo.order_id)
    return {
        "object": "xsolla.order",
        "order_id": xo.order_id,
        "xsolla_order_id": xo.xsolla_order_id,
        "status": player_status(order.status, [e.status for e in granted]),
        "sku": xo.sku,
        "quantity": xo.quantity,
        "amount": order.amount_total,
        "currency": order.currency,
        "amount_display": str(to_decimal(order.amount_total, order.currency)),
        "mode": xo.environment,
        "entitlements": [entitlements.view(e) for e in granted],
        "created": int(xo.created_at.timestamp()),
    }


def player_order(
    s: Session, account: XsollaAccount, player: Player, order_id: str
) -> dict[str, Any]:
    """The player's own order; any other order (another player's, another environment's, or
    none) is the same 404, so order ids cannot be probed."""
    xo = s.execute(
        select(m.XsollaOrder).where(
            m.XsollaOrder.order_id == order_id,
            m.XsollaOrder.tenant_id == account.tenant_id,
            m.XsollaOrder.environment == account.environment,
            m.XsollaOrder.uid == player.uid,
        )
    ).scalar_one_or_none()
    order = s.get(m.Order, order_id) if xo is not None else None
    if xo is None or order is None or xo.token is None:
        raise NotFound(f"No such order: {order_id!r}", param="order_id")
    return order_status_view(s, xo, order)
