"""Repair orders whose provider events never arrived (buyer left, connection dropped, endpoint
down), in two passes per tenant and environment:

1. **Events catch-up.** List the Stripe events created after the tenant's cursor (with a few
   minutes of overlap, since events of one second may be listed late; never further back than
   Stripe's 30 days) and feed them through the normal ingest path: the same ``inbound_events``
   rows webhooks make, deduplicated by event id, so an event that also arrives (or arrived) by
   webhook has its effect once. They come from the API with the merchant's key, so there is no
   signature to check; ``livemode`` must still match the environment.
2. **Waiting orders.** Fetch the PaymentIntent of every order still open, requiring action,
   processing or partially paid after a grace period, and apply it through the same state
   machine. A fresh API read is the newest truth, so it is applied as observed now. Orders
   older than ``MAX_ORDER_AGE`` (30 days, Stripe's event retention) are left alone: an
   abandoned checkout is not re-read every 15 minutes forever.

Every Stripe call (each page of the Events API included) takes a token from the tenant's
``RateLimiter`` bucket. A disconnected (deauthorized) account is skipped in both passes: the
platform may no longer read it. Listed events of types outside the subscribed catalogue are
dropped before they are stored, as a webhook endpoint subscribed to the catalogue would never
have received them.

Xsolla orders are then reconciled by :mod:`caisse.xsolla.reconcile` (Xsolla's transaction
reports, looked up by our order id; missed refunds listed per project). One run covers both
providers; the periodic job ``reconcile`` runs it every ``INTERVAL`` (the worker enqueues it at
start). The report has one row per tenant, environment and provider; a provider's failure for one
tenant is an error on that row, never the end of the run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from caisse.domain.events import DomainEvent
from caisse.domain.states import PaymentPhase
from caisse.errors import CaisseError
from caisse.intake.processing import process_claimed
from caisse.intake.stripe import event_row
from caisse.jobs.registry import JobContext, handler
from caisse.jobs.worker import backoff_seconds
from caisse.orders.apply import apply_snapshots
from caisse.providers.stripe import envelope
from caisse.providers.stripe.catalog import is_subscribed
from caisse.providers.stripe.mapping import payment_snapshot
from caisse.providers.stripe.ratelimit import RateLimiter
from caisse.providers.xsolla.client import DEFAULT_TIMEOUT as XSOLLA_TIMEOUT
from caisse.providers.xsolla.ratelimit import XsollaRateLimiter
from caisse.runtime import Runtime
from caisse.storage import jobs as jobstore
from caisse.storage import models as m
from caisse.storage.inbound import InboundBatchWriter
from caisse.tenants.credentials import stripe_account_header
from caisse.xsolla.reconcile import reconcile_xsolla

log = logging.getLogger("caisse.reconcile")

WAITING = (
    PaymentPhase.OPEN,
    PaymentPhase.REQUIRES_ACTION,
    PaymentPhase.PROCESSING,
    PaymentPhase.FAILED,
    PaymentPhase.PARTIALLY_PAID,
)


INTERVAL = dt.timedelta(minutes=15)
MAX_ORDER_AGE = dt.timedelta(days=30)  # older waiting orders are abandoned, not re-read
EVENTS_PAGE = 100
DISCONNECTED = "Stripe account disconnected"
EVENT_RETENTION = dt.timedelta(days=30)
CURSOR_OVERLAP = dt.timedelta(minutes=5)
_LIMITER = RateLimiter(share=0.5)  # leave half of the budget to the tenants' own traffic


@dataclass
class TenantReport:
    """What one run did for one tenant, environment and provider."""

    tenant_id: str
    environment: str
    provider: str
    checked: int = 0
    repaired: int = 0
    events_listed: int = 0
    events_added: int = 0
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None


@dataclass
class ReconcileReport:
    """Rows per (tenant, environment, provider), and the run's totals."""

    rows: dict[tuple[str, str, str], TenantReport] = field(default_factory=dict)

    def row(self, tenant_id: str, environment: str, provider: str) -> TenantReport:
        key = (tenant_id, environment, provider)
        if key not in self.rows:
            self.rows[key] = TenantReport(tenant_id, environment, provider)
        return self.rows[key]

    def tenants(self) -> list[TenantReport]:
        return [self.rows[k] for k in sorted(self.rows)]

    @property
    def checked(self) -> int:
        return sum(r.checked for r in self.rows.values())

    @property
    def repaired(self) -> int:
        return sum(r.repaired for r in self.rows.values())

    @property
    def events_listed(self) -> int:
        return sum(r.events_listed for r in self.rows.values())

    @property
    def events_added(self) -> int:
        return sum(r.events_added for r in self.rows.values())

    @property
    def errors(self) -> list[str]:
        """Every error, prefixed with its tenant, environment and provider."""
        return [
            f"{r.tenant_id} ({r.environment}, {r.provider}): {e}"
            for r in self.tenants()
            for e in r.errors
        ]


def reconcile(
    rt: Runtime,
    *,
    tenant_id: str | None = None,
    grace: dt.timedelta = dt.timedelta(minutes=10),
    progress: Callable[[str], None] | None = None,
    limiter: RateLimiter | None = None,
    events: bool = True,
    stripe: bool = True,
    xsolla: bool = True,
    xsolla_limiter: XsollaRateLimiter | None = None,
    xsolla_timeout: float = XSOLLA_TIMEOUT,
) -> ReconcileReport:
    """Reconcile Stripe then Xsolla orders, for one tenant or all; never raises for a
    provider's error (each lands on its tenant's row)."""
    report = ReconcileReport()
    if stripe:
        _reconcile_stripe(
            rt, report, tenant_id=tenant_id, grace=grace, progress=progress,
            limiter=limiter or _LIMITER, events=events,
        )  # fmt: skip
    if xsolla:
        for outcome in reconcile_xsolla(
            rt,
            tenant_id=tenant_id,
            grace=grace,
            progress=progress,
            limiter=xsolla_limiter,
            timeout=xsolla_timeout,
        ):
            row = report.row(outcome.tenant_id, outcome.environment, "xsolla")
            row.checked += outcome.checked
            row.repaired += outcome.repaired
            row.errors += outcome.errors
            row.skipped = outcome.skipped
    return report


@dataclass(frozen=True, slots=True)
class _StripeAccount:
    """What reconciliation needs of a tenant's Stripe settings in one environment."""

    tenant_id: str
    environment: str
    secret_key: str
    stripe_account: str | None  # the Stripe-Account header (OAuth connections only)
    disconnected: bool


def _stripe_accounts(rt: Runtime, tenant_id: str | None) -> list[_StripeAccount]:
    with rt.db.read() as s:
        stmt = select(m.ProviderAccount).where(m.ProviderAccount.provider == "stripe")
        if tenant_id:
            stmt = stmt.where(m.ProviderAccount.tenant_id == tenant_id)
        return [
            _StripeAccount(
                a.tenant_id,
                a.environment,
                rt.box.decrypt(a.secrets["secret_key"]),
                stripe_account_header(a),
                bool((a.config or {}).get("deauthorized_at")),
            )
            for a in s.scalars(stmt.order_by(m.ProviderAccount.tenant_id))
        ]


def _reconcile_stripe(
    rt: Runtime,
    report: ReconcileReport,
    *,
    tenant_id: str | None,
    grace: dt.timedelta,
    progress: Callable[[str], None] | None,
    limiter: RateLimiter,
    events: bool,
) -> None:
    """The two Stripe passes (events catch-up, waiting orders)."""
    accounts = {(a.tenant_id, a.environment): a for a in _stripe_accounts(rt, tenant_id)}
    if events:
        catch_up_events(rt, report, tenant_id=tenant_id, limiter=limiter, accounts=accounts)
    now = rt.clock.now()
    with rt.db.read() as s:
        stmt = select(
            m.Order.id, m.Order.tenant_id, m.Order.environment, m.Order.provider_payment_id
        ).where(
            m.Order.provider == "stripe",
            m.Order.provider_payment_id.is_not(None),
            m.Order.phase.in_([p.value for p in WAITING]),
            m.Order.created_at <= now - grace,
            m.Order.created_at > now - MAX_ORDER_AGE,
        )
        if tenant_id:
            stmt = stmt.where(m.Order.tenant_id == tenant_id)
        orders = s.execute(stmt.order_by(m.Order.id)).all()
    for order_id, tenant, env, pi_id in orders:
        assert pi_id is not None  # selected with provider_payment_id IS NOT NULL
        row = report.row(tenant, env, "stripe")
        account = accounts.get((tenant, env))
        if account is not None and account.disconnected:
            row.skipped = DISCONNECTED
            continue  # the platform may no longer read a disconnected account's objects
        row.checked += 1
        if progress:
            progress(order_id)
        if account is None:
            row.errors.append(f"{order_id}: no Stripe key")
            continue
        try:
            limiter.acquire(tenant, env)
            gateway = rt.stripe(account.secret_key, account.stripe_account)
            pi = gateway.retrieve_payment_intent(pi_id)
            snap = payment_snapshot(pi, rt.clock.now())
            with rt.db.write() as s:
                changed = apply_snapshots(
                    s,
                    order_id,
                    [snap],
                    now=rt.clock.now(),
                    cause=DomainEvent("reconcile.applied", {"payment_intent": pi_id}),
                )
        except CaisseError as exc:
            row.errors.append(f"{order_id}: {exc.message}")
            continue
        if changed:
            row.repaired += 1
            log.info("order repaired", extra={"action": "reconcile.repaired", "order_id": order_id})


def catch_up_events(
    rt: Runtime,
    report: ReconcileReport,
    *,
    tenant_id: str | None = None,
    limiter: RateLimiter,
    accounts: dict[tuple[str, str], _StripeAccount] | None = None,
) -> None:
    """Pass 1: list missed events per tenant and environment, store and process them."""
    if accounts is None:
        accounts = {(a.tenant_id, a.environment): a for a in _stripe_accounts(rt, tenant_id)}
    with rt.db.read() as s:
        cursors = {
            (c.tenant_id, c.environment): c.created_gt
            for c in s.scalars(
                select(m.ReconcileCursor).where(m.ReconcileCursor.provider == "stripe")
            )
        }
    for (tenant, env), account in sorted(accounts.items()):
        row = report.row(tenant, env, "stripe")
        if account.disconnected:
            row.skipped = DISCONNECTED
            continue  # the platform may no longer read a disconnected account's events
        now = rt.clock.now()
        oldest = int((now - EVENT_RETENTION).timestamp()) + 60
        cursor = cursors.get((tenant, env))
        since = (
            oldest if cursor is None else max(oldest, cursor - int(CURSOR_OVERLAP.total_seconds()))
        )
        try:
            listed = list_events(rt, account, since, limiter)
        except CaisseError as exc:
            row.errors.append(f"events not listed: {exc.message}")
            continue
        row.events_listed += len(listed)
        added = store_listed_events(rt, tenant, env, listed)
        row.events_added += len(added)
        newest = max([int(e.get("created") or 0) for e in listed] + [cursor or since])
        _save_cursor(rt, tenant, env, newest)
        for event_id in added:
            process_claimed(rt.db, rt.clock, event_id, "reconcile", backoff_seconds)


def list_events(
    rt: Runtime, account: _StripeAccount, created_gt: int, limiter: RateLimiter
) -> list[dict[str, Any]]:
    """The account's events since ``created_gt``, oldest first, paged by hand so that every
    request takes its own token (an auto-paging iterator would make many calls for one)."""
    gateway = rt.stripe(account.secret_key, account.stripe_account)
    events: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        limiter.acquire(account.tenant_id, account.environment)
        page, more = gateway.list_events_page(
            created_gt=created_gt, starting_after=after, limit=EVENTS_PAGE
        )
        events += page
        if not more or not page:
            break
        after = str(page[-1]["id"])
    events.sort(key=lambda e: (int(e.get("created") or 0), str(e.get("id"))))
    return events


def store_listed_events(
    rt: Runtime, tenant_id: str, environment: str, listed: list[dict[str, Any]]
) -> list[str]:
    """Insert events read from the Events API as ingest would (duplicates add nothing);
    returns the ids of rows that are new and still to process."""
    rows: list[dict[str, Any]] = []
    now = rt.clock.now()
    for event in listed:
        if not is_subscribed(str(event.get("type"))):
            continue  # the account's other events (payouts, customers…) are not caisse's
        body = json.dumps(event, ensure_ascii=False).encode()
        try:
            parsed = envelope.read(body)
        except CaisseError:
            continue
        if parsed.livemode != (environment == "live"):
            continue  # never let a test event into the live world, whatever key listed it
        rows.append(
            event_row(
                tenant_id,
                environment,
                parsed,
                body,
                now=now,
                headers={"user-agent": "caisse-reconcile (Events API)"},
            )
        )
    if not rows:
        return []
    InboundBatchWriter(rt.db.engine).write(rows)
    with rt.db.read() as s:
        return list(
            s.scalars(
                select(m.InboundEvent.id).where(
                    m.InboundEvent.id.in_([r["id"] for r in rows]),
                    m.InboundEvent.status.in_(("pending", "retrying")),
                )
            )
        )


def _save_cursor(rt: Runtime, tenant_id: str, environment: str, created_gt: int) -> None:
    with rt.db.write() as s:
        row = s.get(m.ReconcileCursor, (tenant_id, environment, "stripe"))
        if row is None:
            s.add(
                m.ReconcileCursor(
                    tenant_id=tenant_id,
                    environment=environment,
                    provider="stripe",
                    created_gt=created_gt,
                    updated_at=rt.clock.now(),
                )
            )
        else:
            row.created_gt = max(row.created_gt, created_gt)
            row.updated_at = rt.clock.now()


# -- the periodic job ---------------------------------------------------------------------------

JOB_KIND = "reconcile"


def schedule(rt: Runtime) -> None:
    """Make sure the periodic job exists (idempotent: one row per kind and key)."""
    now = rt.clock.now()
    with rt.db.write() as s:
        jobstore.enqueue(
            s, JOB_KIND, "periodic", {}, now=now, run_at=now + INTERVAL, max_attempts=1_000_000
        )


@handler(JOB_KIND)
def run_periodic(ctx: JobContext) -> None:
    report = reconcile(ctx.rt)
    log.info(
        "reconciled",
        extra={
            "action": "reconcile.periodic",
            "checked": report.checked,
            "repaired": report.repaired,
            "events_added": report.events_added,
            "errors": len(report.errors),
        },
    )
    for row in report.tenants():
        if row.errors:
            log.warning(
                "reconcile errors",
                extra={
                    "action": "reconcile.tenant_errors",
                    "tenant_id": row.tenant_id,
                    "environment": row.environment,
                    "provider": row.provider,
                    "errors": row.errors[:20],
                },
            )
    with ctx.rt.db.write() as s:
        ctx.reschedule(s, ctx.rt.clock.now() + INTERVAL)
