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
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from caisse.clock import Clock
from caisse.domain.events import DomainEvent
from caisse.errors import CaisseError
from caisse.orders.apply import apply_snapshots, prefetch_orders
from caisse.providers.base import Interpretation, OrderLookup
from caisse.providers.stripe import mapping as stripe_mapping
from caisse.storage import batch, inbound
from caisse.storage import jobs as jobstore
from caisse.storage import models as m
from caisse.storage import orders as order_store
from caisse.storage.db import Database
from caisse.storage.jobs import ClaimedJob
from caisse.tenants.credentials import record_account_flags

log = logging.getLogger("caisse.intake")

FINAL_STATUSES = ("processed", "unmatched", "ignored", "failed")
MAX_ATTEMPTS = 25


def _stripe(body: bytes) -> Interpretation:
    return stripe_mapping.interpret(json.loads(body))


INTERPRETERS: dict[str, Callable[[bytes], Interpretation]] = {"stripe": _stripe}


def process_batch(
    db: Database,
    clock: Clock,
    event_ids: Sequence[str],
    worker_id: str,
    backoff: Callable[[int], float],
    *,
    dispatch: tuple[str, ...] = (),
    lease_seconds: float = 120.0,
) -> list[ClaimedJob]:
    """Process leased events in ONE transaction, in the order given (the order they were
    claimed in): one commit, one read of the rows and one write of each instead of one
    transaction per event. If anything in the batch fails, nothing of it is kept and each event
    runs again alone (:func:`process_claimed`), so one bad event fails only itself.

    Jobs of the ``dispatch`` kinds the events make (partner deliveries) come back already
    claimed by ``worker_id`` (``jobs.dispatch_here``), for the worker to run at once."""
    if len(event_ids) > 1:
        try:
            return _apply_in_transaction(db, clock, event_ids, worker_id, dispatch, lease_seconds)
        except Exception as exc:
            log.info(
                "event batch failed, processing one by one",
                extra={
                    "action": "intake.batch_split",
                    "events": len(event_ids),
                    "error": repr(exc)[:200],
                },
            )
    taken = []
    for event_id in event_ids:
        taken += process_claimed(
            db, clock, event_id, worker_id, backoff, dispatch=dispatch, lease_seconds=lease_seconds
        )
    return taken


def process_claimed(
    db: Database,
    clock: Clock,
    event_id: str,
    worker_id: str,
    backoff: Callable[[int], float],
    *,
    dispatch: tuple[str, ...] = (),
    lease_seconds: float = 120.0,
) -> list[ClaimedJob]:
    """Process one leased event; on failure record it on the row and schedule a retry.
    Returns the jobs dispatched to ``worker_id``, as :func:`process_batch` does."""
    try:
        return _apply_in_transaction(db, clock, [event_id], worker_id, dispatch, lease_seconds)
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
        return []


def _apply_in_transaction(
    db: Database,
    clock: Clock,
    event_ids: Sequence[str],
    worker_id: str,
    dispatch: tuple[str, ...],
    lease_seconds: float,
) -> list[ClaimedJob]:
    """Apply leased events in one transaction; the jobs it dispatched once it has committed."""
    with db.write() as s:
        taken = jobstore.dispatch_here(
            s, worker_id, dispatch, now=clock.now(), lease_seconds=lease_seconds
        )
        _apply_leased(s, clock, event_ids)
    return taken


def _apply_leased(s: Session, clock: Clock, event_ids: Sequence[str]) -> None:
    """Lock the events and apply, in the order given, each that is not final yet: their
    orders read together first, their plain writes sent together last (``storage.batch``)."""
    rows = s.scalars(
        select(m.InboundEvent).where(m.InboundEvent.id.in_(event_ids)).with_for_update()
    )
    by_id = {ev.id: ev for ev in rows}
    pending = [
        (ev, _interpret(ev))
        for ev in (by_id.get(event_id) for event_id in event_ids)
        if ev is not None and ev.status not in FINAL_STATUSES
    ]
    with batch.held(s):
        _prefetch(s, pending)
        for ev, interp in pending:
            apply_event(s, clock, ev, interp)


def _interpret(ev: m.InboundEvent) -> Interpretation:
    interpreter = INTERPRETERS.get(ev.provider)
    if interpreter is None:
        raise CaisseError(f"No interpreter for provider {ev.provider!r}")
    return interpreter(ev.raw_body)


def _prefetch(s: Session, pending: list[tuple[m.InboundEvent, Interpretation]]) -> None:
    """Read up front, for all the order events, what applying them reads: who holds each
    provider payment (one statement per provider), then the orders so found. An event found
    another way (its payment record, its metadata) reads its own when applied."""
    by_payment = [
        (ev, interp.lookup.provider_payment_id)
        for ev, interp in pending
        if interp.handling == "order" and interp.lookup.provider_payment_id
    ]
    payments: dict[str, list[str]] = {}
    for ev, payment_id in by_payment:
        payments.setdefault(ev.provider, []).append(payment_id)
    for provider, payment_ids in payments.items():
        order_store.prefetch_owners(s, provider, payment_ids)
    found = [(ev, order_store.find_by_payment(s, ev.provider, pid)) for ev, pid in by_payment]
    prefetch_orders(s, [owner.id for ev, owner in found if owner and _belongs(owner, ev)])


def apply_event(s: Session, clock: Clock, ev: m.InboundEvent, interp: Interpretation) -> None:
    """Apply one locked event, as ``interp`` reads it."""
    now = clock.now()
    raw = ev.raw_body
    status, order_id = _apply(s, ev, interp, now)
    # The row is written once, last, by one plain UPDATE (not the unit of work), and its lease
    # released with it.
    done: dict[str, Any] = {
        "event_id": ev.id,
        "status": status,
        "attempts": ev.attempts + 1,
        "processed_at": now,
        "error": None,
        "locked_by": None,
        "locked_until": None,
    }
    if order_id is not None:
        done["order_id"] = order_id
    done.update(_compacted(ev, raw))
    batch.defer(s, _FINISH, [done])


_FINISH = update(m.InboundEvent.__table__).where(  # type: ignore[arg-type]
    m.InboundEvent.__table__.c.id == bindparam("event_id")
)


def _apply(
    s: Session, ev: m.InboundEvent, interp: Interpretation, now: dt.datetime
) -> tuple[str, str | None]:
    """``(the event's final status, the order it changed)``."""
    if interp.handling in ("account", "account_deauthorized") and interp.account is not None:
        deauthorized = interp.handling == "account_deauthorized"
        applied = _apply_account(s, ev, interp, deauthorized=deauthorized)
        return ("processed" if applied else "ignored"), None
    if interp.handling != "order":
        return "processed", None
    order_id = _resolve(s, ev, interp.lookup)
    if order_id is None:
        return "unmatched", None
    apply_snapshots(
        s,
        order_id,
        interp.snapshots,
        now=now,
        source_event_id=ev.id,
        cause=DomainEvent("event.applied", {"event_type": ev.type}),
    )
    return "processed", order_id


def _compacted(ev: m.InboundEvent, raw: bytes) -> dict[str, Any]:
    """The body compressed, when it was stored as received: ingest leaves that to processing,
    which writes the row anyway, so that acknowledging an event never waits for zlib."""
    if ev.body_encoding == "identity":
        packed, encoding = inbound.encode_body(raw)
        if encoding != "identity":
            return {"body": packed, "body_encoding": encoding}
    return {}


def _resolve(s: Session, ev: m.InboundEvent, lookup: OrderLookup) -> str | None:
    """Find the order, but only among this tenant's orders of this environment: an event can
    never touch another tenant's order, whatever its metadata claims."""
    if lookup.provider_payment_id:
        found = order_store.find_by_payment(s, ev.provider, lookup.provider_payment_id)
        if found is None:
            order_id = order_store.find_by_payment_record(
                s, ev.provider, lookup.provider_payment_id
            )
            found = order_store.owner(s, order_id) if order_id else None
        if _belongs(found, ev):
            return found.id  # type: ignore[union-attr]
    if lookup.order_id:
        found = order_store.owner(s, lookup.order_id)
        if _belongs(found, ev):
            return found.id  # type: ignore[union-attr]
    return None


def _belongs(found: order_store.OrderOwner | None, ev: m.InboundEvent) -> bool:
    return found is not None and (found.tenant_id, found.environment) == (
        ev.tenant_id,
        ev.environment,
    )


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
