"""Reconciliation of Xsolla orders whose webhook never came (the player paid, then Xsolla's
``order_paid`` or ``order_canceled`` was lost, refused by a proxy, or never retried).

Per tenant and environment with Xsolla credentials and a ``merchant_id``, two passes read
Xsolla's Pay Station transaction reports (``providers/xsolla/client.py`` cites them):

1. **Waiting orders.** Every order still open (or otherwise waiting) after the grace period and
   younger than :data:`MAX_WAITING_AGE` is looked up by its own id, which caisse sent as
   ``settings.external_id`` (fast search, one call per order). A transaction ``done`` (or
   ``awaitingRefund`` / ``partiallyRefunded``, which imply it was paid) pays the order; one
   ``refunded`` pays it and refunds it, as the two webhooks would have. ``created``,
   ``processing``, ``review``, ``error`` and ``canceled`` change nothing: the player may still
   pay within the token's 24 hours.
2. **Missed refunds.** Transactions ``refunded`` or ``canceled`` in the last
   :data:`REFUND_LOOKBACK` are listed for the project (``search.json``, paged), and every paid
   order of ours among them is refunded.

Both apply through the webhook's own path (:mod:`caisse.xsolla.notifications`): a stored
``InboundEvent`` under the webhook's key (``order_paid:<id>`` / ``order_canceled:<id>``), then
``settle_paid`` / ``revoke`` in the same transaction. Whichever of the webhook and the
reconciliation comes first has the only effect; the other finds the key and applies nothing.
The same checks as the webhook guard a payment: our order id, the project, the player and the
amount and currency (as Decimal); a mismatch is reported and not applied.

Every call first takes a token from the merchant's bucket (``providers/xsolla/ratelimit.py``).
Refused credentials (401/403), a rate limit (429), a 5xx, an unreachable API or a timeout end that
tenant's pass with an error in the report; other tenants carry on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse.domain.events import DomainEvent
from caisse.domain.states import PaymentPhase
from caisse.errors import CaisseError, ProviderTimeout, ProviderUnavailable
from caisse.money import to_decimal
from caisse.providers.xsolla.client import (
    DEFAULT_TIMEOUT,
    SEARCH_PAGE,
    TransactionRecord,
    XsollaClient,
    XsollaRejected,
)
from caisse.providers.xsolla.ratelimit import XsollaRateLimiter
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.tenants.credentials import XsollaAccount, xsolla_accounts
from caisse.xsolla import notifications as notes
from caisse.xsolla.policy import CANCELED_ORDER_STATUSES

WAITING = (
    PaymentPhase.OPEN,
    PaymentPhase.REQUIRES_ACTION,
    PaymentPhase.PROCESSING,
    PaymentPhase.FAILED,
    PaymentPhase.PARTIALLY_PAID,
)
# Pay Station tokens live 24 h, so older unpaid orders can no longer be paid; a week also
# covers a reconciler that was down for days.
MAX_WAITING_AGE = dt.timedelta(days=7)
REFUND_LOOKBACK = dt.timedelta(days=30)
CLOCK_SKEW = dt.timedelta(minutes=1)  # Xsolla's clock may run ahead of ours
PAID_STATUSES = frozenset({"done", "awaitingRefund", "partiallyRefunded"})
REVERSED_STATUSES = ("refunded", "canceled")
USER_AGENT = "caisse-reconcile (Xsolla transaction search)"
_LIMITER = XsollaRateLimiter()
T = TypeVar("T")


@dataclass
class XsollaOutcome:
    """What one tenant's pass did in one environment."""

    tenant_id: str
    environment: str
    checked: int = 0
    repaired: int = 0
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None


class _Stop(Exception):
    """An error that ends this tenant's pass (the API refuses us or is down)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def reconcile_xsolla(
    rt: Runtime,
    *,
    tenant_id: str | None = None,
    grace: dt.timedelta = dt.timedelta(minutes=10),
    progress: Callable[[str], None] | None = None,
    limiter: XsollaRateLimiter | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[XsollaOutcome]:
    """Run both passes for every tenant with Xsolla credentials (blocking: it runs its own
    event loop, so call it from a thread without one, as the CLI and the job worker do)."""
    run = partial(
        _reconcile,
        rt,
        tenant_id=tenant_id,
        grace=grace,
        progress=progress,
        limiter=limiter or _LIMITER,
        call_timeout=timeout,
    )
    return anyio.run(run)


async def _reconcile(
    rt: Runtime,
    *,
    tenant_id: str | None,
    grace: dt.timedelta,
    progress: Callable[[str], None] | None,
    limiter: XsollaRateLimiter,
    call_timeout: float,
) -> list[XsollaOutcome]:
    accounts = _accounts(rt, tenant_id)
    outcomes: list[XsollaOutcome] = []
    if not accounts:
        return outcomes
    client = XsollaClient(
        rt.settings.xsolla_api_base,
        merchant_api_base=rt.settings.xsolla_merchant_api_base,
        timeout=call_timeout,
    )
    try:
        for account in accounts:
            outcome = XsollaOutcome(account.tenant_id, account.environment)
            outcomes.append(outcome)
            if account.merchant_id is None:
                outcome.skipped = "no Xsolla merchant_id configured"
                continue
            pass_ = _Pass(rt, client, account, account.merchant_id, limiter, outcome, progress)
            try:
                await pass_.waiting_orders(grace)
                await pass_.missed_refunds()
            except _Stop as stop:
                outcome.errors.append(stop.message)
    finally:
        await client.aclose()
    return outcomes


def _accounts(rt: Runtime, tenant_id: str | None) -> list[XsollaAccount]:
    with rt.db.read() as s:
        stmt = select(m.ProviderAccount.tenant_id).where(m.ProviderAccount.provider == "xsolla")
        if tenant_id:
            stmt = stmt.where(m.ProviderAccount.tenant_id == tenant_id)
        tenants = sorted(set(s.scalars(stmt)))
        return [
            account
            for tenant in tenants
            for _, account in sorted(xsolla_accounts(s, rt.box, tenant).items())
        ]


class _Pass:
    def __init__(
        self,
        rt: Runtime,
        client: XsollaClient,
        account: XsollaAccount,
        merchant_id: str,
        limiter: XsollaRateLimiter,
        outcome: XsollaOutcome,
        progress: Callable[[str], None] | None,
    ) -> None:
        self.rt, self.client, self.account = rt, client, account
        self.merchant_id, self.limiter, self.outcome = merchant_id, limiter, outcome
        self.progress = progress

    # -- pass 1 ---------------------------------------------------------------------------------

    async def waiting_orders(self, grace: dt.timedelta) -> None:
        now = self.rt.clock.now()
        with self.rt.db.read() as s:
            order_ids = list(
                s.scalars(
                    select(m.XsollaOrder.order_id)
                    .join(m.Order, m.Order.id == m.XsollaOrder.order_id)
                    .where(
                        m.XsollaOrder.tenant_id == self.account.tenant_id,
                        m.XsollaOrder.environment == self.account.environment,
                        m.XsollaOrder.xsolla_order_id.is_not(None),
                        m.Order.provider == notes.PROVIDER,
                        m.Order.phase.in_([p.value for p in WAITING]),
                        m.Order.created_at <= now - grace,
                        m.Order.created_at >= now - MAX_WAITING_AGE,
                    )
                    .order_by(m.XsollaOrder.order_id)
                )
            )
        for order_id in order_ids:
            self.outcome.checked += 1
            if self.progress:
                self.progress(order_id)
            found = await self._call(
                order_id,
                partial(
                    self.client.find_transactions_fast,
                    self.merchant_id,
                    self.account.api_key,
                    external_id=order_id,
                ),
            )
            if found is None:
                continue
            mine = [tx for tx in found if self._ours(tx, order_id)]
            paid = next((tx for tx in mine if tx.status in PAID_STATUSES), None)
            refunded = next((tx for tx in mine if tx.status == "refunded"), None)
            tx = paid or refunded
            if tx is None:
                continue  # not paid (yet): nothing to repair
            with self.rt.db.write() as s:
                xo = s.get(m.XsollaOrder, order_id)
                assert xo is not None
                problem = _mismatch(xo, tx)
                if problem:
                    self.outcome.errors.append(f"{order_id}: transaction {tx.id} {problem}")
                    continue
                changed = self._settle(s, xo, tx)
                if paid is None:  # refunded before caisse ever heard of the payment
                    changed = self._revoke(s, xo, tx) or changed
            self._count(order_id, changed)

    # -- pass 2 ---------------------------------------------------------------------------------

    async def missed_refunds(self) -> None:
        now = self.rt.clock.now()
        reversed_txs: dict[str, TransactionRecord] = {}
        for status in REVERSED_STATUSES:
            offset = 0
            while True:
                page = await self._call(
                    None,
                    partial(
                        self.client.search_transactions,
                        self.merchant_id,
                        self.account.api_key,
                        project_id=self.account.project_id,
                        datetime_from=now - REFUND_LOOKBACK,
                        datetime_to=now + CLOCK_SKEW,
                        status=status,
                        dry_run=self.account.sandbox,
                        limit=SEARCH_PAGE,
                        offset=offset,
                    ),
                )
                if page is None:
                    break
                for tx in page:
                    if tx.external_id and self._ours(tx, tx.external_id):
                        reversed_txs.setdefault(tx.external_id, tx)
                if len(page) < SEARCH_PAGE:
                    break
                offset += SEARCH_PAGE
        if not reversed_txs:
            return
        with self.rt.db.read() as s:
            candidates = list(
                s.scalars(
                    select(m.XsollaOrder.order_id)
                    .join(m.Order, m.Order.id == m.XsollaOrder.order_id)
                    .where(
                        m.XsollaOrder.order_id.in_(sorted(reversed_txs)),
                        m.XsollaOrder.tenant_id == self.account.tenant_id,
                        m.XsollaOrder.environment == self.account.environment,
                        m.XsollaOrder.xsolla_order_id.is_not(None),
                        m.Order.amount_paid > 0,
                        m.Order.status.not_in(sorted(CANCELED_ORDER_STATUSES)),
                    )
                    .order_by(m.XsollaOrder.order_id)
                )
            )
        for order_id in candidates:
            self.outcome.checked += 1
            if self.progress:
                self.progress(order_id)
            with self.rt.db.write() as s:
                xo = s.get(m.XsollaOrder, order_id)
                assert xo is not None
                changed = self._revoke(s, xo, reversed_txs[order_id])
            self._count(order_id, changed)

    # -- effects --------------------------------------------------------------------------------

    def _settle(self, s: Session, xo: m.XsollaOrder, tx: TransactionRecord) -> bool:
        assert xo.xsolla_order_id is not None
        event = self._event(s, xo, notes.order_paid_key(xo.xsolla_order_id), "order_paid", tx)
        if event is None:
            return False  # the webhook (or an earlier run) applied it
        now = self.rt.clock.now()
        changed = notes.settle_paid(
            s,
            xo,
            event.id,
            transaction_id=tx.id,
            method=tx.payment_method,
            observed_at=tx.payment_date or now,
            now=now,
            cause=DomainEvent(
                "xsolla.reconciled",
                {"xsolla_order_id": xo.xsolla_order_id, "transaction_id": tx.id},
            ),
        )
        event.status, event.processed_at = "processed", now
        return changed

    def _revoke(self, s: Session, xo: m.XsollaOrder, tx: TransactionRecord) -> bool:
        assert xo.xsolla_order_id is not None
        event = self._event(
            s, xo, notes.order_canceled_key(xo.xsolla_order_id), "order_canceled", tx
        )
        if event is None:
            return False
        now = self.rt.clock.now()
        reason = f"refund ({tx.status}{': ' + tx.refund_reason if tx.refund_reason else ''})"
        changed = notes.revoke(s, xo, event.id, tx.id, now, reason)
        event.status, event.processed_at = "processed", now
        return changed

    def _event(
        self, s: Session, xo: m.XsollaOrder, key: str, kind: str, tx: TransactionRecord
    ) -> m.InboundEvent | None:
        event = notes.record_event(
            s,
            tenant_id=xo.tenant_id,
            environment=xo.environment,
            key=key,
            type=kind,
            project_id=self.account.project_id,
            created_at=tx.payment_date,
            body=tx.raw,
            headers={"user-agent": USER_AGENT},
            remote_addr=None,
            now=self.rt.clock.now(),
        )
        if event is not None:
            event.order_id = xo.order_id
        return event

    def _count(self, order_id: str, changed: bool) -> None:
        if changed:
            self.outcome.repaired += 1

    # -- checks and calls -----------------------------------------------------------------------

    def _ours(self, tx: TransactionRecord, order_id: str) -> bool:
        """The transaction names this order, in this project and environment."""
        return (
            tx.external_id == order_id
            and tx.project_id in (None, self.account.project_id)
            and (tx.dry_run is None or tx.dry_run == self.account.sandbox)
        )

    async def _call(self, order_id: str | None, call: Callable[[], Awaitable[T]]) -> T | None:
        """One API call under the rate limit; None after an error that only concerns this
        order, :class:`_Stop` after one that concerns the whole tenant."""
        self.limiter.acquire_for(self.merchant_id)
        try:
            return await call()
        except XsollaRejected as exc:
            if exc.status_code in (401, 403):
                raise _Stop(
                    f"Xsolla refused the merchant credentials (HTTP {exc.status_code}): "
                    "check merchant_id and that the API key is valid for all projects"
                ) from None
            if exc.status_code == 429:
                raise _Stop(
                    "Xsolla rate limit reached (HTTP 429); the rest waits for the next run"
                ) from None
            self.outcome.errors.append(f"{order_id or 'transaction search'}: {exc.message}")
            return None
        except (ProviderUnavailable, ProviderTimeout) as exc:
            raise _Stop(f"Xsolla unavailable: {exc.message}") from None
        except CaisseError as exc:
            self.outcome.errors.append(f"{order_id or 'transaction search'}: {exc.message}")
            return None


def _mismatch(xo: m.XsollaOrder, tx: TransactionRecord) -> str | None:
    """Why this transaction cannot be our order's payment (the webhook's checks), if it cannot."""
    if tx.user_id is not None and tx.user_id != xo.uid:
        return "belongs to another player"
    expected = to_decimal(xo.unit_amount * xo.quantity, xo.currency)
    if tx.amount is None or (tx.currency or "").lower() != xo.currency or tx.amount != expected:
        return (
            f"amount {tx.amount} {tx.currency} differs from the order's {expected} "
            f"{xo.currency.upper()}"
        )
    return None
