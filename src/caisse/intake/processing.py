"""Processing a stored event: interpret → find the order → fold the snapshots in → save the
order, its timeline and its partner messages → mark the event processed, all in ONE
transaction. The event row is its own job: a worker leases it (``storage.inbound.claim``), and
a crash anywhere rolls everything back and leaves the lease to expire, so the event is processed
again; a second run of a processed event is a no-op, so every event has its effect exactly once.
A failure is kept on the row (``error``, ``attempts``) and retried with backoff; after
``MAX_ATTEMPTS`` the event is parked as ``failed`` for an operator to look at and replay.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse.clock import Clock
from caisse.domain.events import DomainEvent
from caisse.errors import CaisseError
from caisse.orders.apply import apply_snapshots
from caisse.providers.base import Interpretation, OrderLookup
from caisse.providers.stripe import mapping as stripe_mapping
from caisse.storage import inbound
from caisse.storage import models as m
from caisse.storage import orders as order_store
from caisse.storage.db import Database
from caisse.tenants.credentials import record_account_flags

log = logging.getLogger("caisse.intake")

FINAL_STATUSES = ("processed", "unmatched", "ignored", "failed")
MAX_ATTEMPTS = 25


def _stripe(body: bytes) -> Interpretation:
    return stripe_mapping.interpret(json.loads(body))


INTERPRETERS: dict[str, Callable[[bytes], Interpretation]] = {"stripe": _stripe}


def process_claimed(
    db: Database, clock: Clock, event_id: str, worker_id: str, backoff: Callable[[int], float]
) -> None:
    """Process one leased event; on failure record it on the row and schedule a retry."""
    try:
        with db.write() as s:
            ev = s.execute(
                select(m.InboundEvent).where(m.InboundEvent.id == event_id).with_for_update()
            ).scalar_one()
            if ev.status in FINAL_STATUSES:
                return
            apply_event(s, clock, ev)
            ev.locked_by = None
            ev.locked_until = None
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        log.warning(
            "event processing failed",
            extra={"action": "intake.process_failed", "event_id": event_id, "error": detail[:500]},
        )
        now = clock.now()
        with db.write() as s:
            attempts = s.execute(
                select(m.InboundEvent.attempts).where(m.InboundEvent.id == event_id)
            ).scalar_one()
            retry_at = None
            if attempts + 1 < MAX_ATTEMPTS:
                retry_at = now + dt.timedelta(seconds=backoff(attempts + 1))
            inbound.release_failed(s, event_id, error=detail, retry_at=retry_at)


def apply_event(s: Session, clock: Clock, ev: m.InboundEvent) -> None:
    now = clock.now()
    interpreter = INTERPRETERS.get(ev.provider)
    if interpreter is None:
        raise CaisseError(f"No interpreter for provider {ev.provider!r}")
    raw = ev.raw_body
    interp = interpreter(raw)
    _compact(ev, raw)
    ev.attempts += 1
    ev.processed_at = now
    ev.error = None
    if interp.handling in ("account", "account_deauthorized") and interp.account is not None:
        deauthorized = interp.handling == "account_deauthorized"
        applied = _apply_account(s, ev, interp, deauthorized=deauthorized)
        ev.status = "processed" if applied else "ignored"
        return
    if interp.handling != "order":
        ev.status = "processed"
        return
    order_id = _resolve(s, ev, interp.lookup)
    if order_id is None:
        ev.status = "unmatched"
        return
    apply_snapshots(
        s,
        order_id,
        interp.snapshots,
        now=now,
        source_event_id=ev.id,
        cause=DomainEvent("event.applied", {"event_type": ev.type}),
    )
    ev.status = "processed"
    ev.order_id = order_id


def _compact(ev: m.InboundEvent, raw: bytes) -> None:
    """Compress a body stored as received: ingest leaves it to processing, which rewrites
    the row anyway, so that acknowledging an event never waits for zlib."""
    if ev.body_encoding == "identity":
        packed, encoding = inbound.encode_body(raw)
        if encoding != "identity":
            ev.body, ev.body_encoding = packed, encoding


def _resolve(s: Session, ev: m.InboundEvent, lookup: OrderLookup) -> str | None:
    """Find the order, but only among this tenant's orders of this environment: an event can
    never touch another tenant's order, whatever its metadata claims."""
    candidates: list[str] = []
    if lookup.provider_payment_id:
        found = order_store.find_by_payment(s, ev.provider, lookup.provider_payment_id)
        if found is None:
            found = order_store.find_by_payment_record(s, ev.provider, lookup.provider_payment_id)
        if found:
            candidates.append(found)
    if lookup.order_id:
        candidates.append(lookup.order_id)
    for order_id in candidates:
        owner = s.execute(
            select(m.Order.tenant_id, m.Order.environment).where(m.Order.id == order_id)
        ).first()
        if owner is not None and owner[0] == ev.tenant_id and owner[1] == ev.environment:
            return order_id
    return None


def _apply_account(
    s: Session, ev: m.InboundEvent, interp: Interpretation, *, deauthorized: bool = False
) -> bool:
    """Keep the tenant's account flags from an event about *its* account; False (nothing
    changed, the event is ``ignored``) for news of any other account.

    Whose account an event is about: a tenant with an ``acct_`` id (connected through OAuth,
    or typed with its own keys) hears only of that account; a tenant with its own keys and no
    id hears only of its own account, i.e. events without an ``account`` field (a Connect
    platform's keys also receive its connected accounts' events, which name them). A
    deauthorization (the merchant disconnected caisse in Stripe) turns charges off for good,
    so no order is created until they connect again."""
    acct = interp.account
    assert acct is not None
    row = s.execute(
        select(m.ProviderAccount).where(
            m.ProviderAccount.tenant_id == ev.tenant_id,
            m.ProviderAccount.environment == ev.environment,
            m.ProviderAccount.provider == ev.provider,
        )
    ).scalar_one_or_none()
    if row is None:
        return False
    if deauthorized:
        if not row.provider_account_id or row.provider_account_id != acct.account_id:
            return False  # only an account actually connected here can be disconnected
        config = dict(row.config or {})
        config.update(
            {
                "charges_enabled": False,
                "payouts_enabled": False,
                "connected": False,
                "deauthorized_at": acct.observed_at.timestamp(),
                "account_observed_at": acct.observed_at.timestamp(),
            }
        )
        row.config = config
        return True
    if row.provider_account_id:
        about_ours = acct.account_id == row.provider_account_id and ev.provider_account_id in (
            None,
            row.provider_account_id,
        )
    else:
        about_ours = ev.provider_account_id is None
    if not about_ours:
        return False
    record_account_flags(row, acct)
    return True
