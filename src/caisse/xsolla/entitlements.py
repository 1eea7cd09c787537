"""What players were granted. A grant is keyed on (order, SKU) by a unique constraint, so the
same paid order grants its items once however many times its webhook arrives; a revoke only
moves ``granted`` rows, so it too happens once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from caisse import ids
from caisse.storage import models as m
from caisse.storage.sql import insert_ignore


def grant(s: Session, xo: m.XsollaOrder, *, now: dt.datetime, event_id: str | None) -> bool:
    """Grant the order's items; True when this call granted them (False: already granted)."""
    result = s.execute(
        insert_ignore(
            s,
            m.Entitlement.__table__,  # type: ignore[arg-type]
            conflict=["order_id", "sku"],
        ).returning(m.Entitlement.id),
        {
            "id": ids.new_id("entitlement"),
            "tenant_id": xo.tenant_id,
            "environment": xo.environment,
            "order_id": xo.order_id,
            "uid": xo.uid,
            "sku": xo.sku,
            "quantity": xo.quantity,
            "status": "granted",
            "granted_at": now,
            "granted_by_event": event_id,
            "revoked_at": None,
            "revoked_by_event": None,
            "revoke_reason": None,
        },
    )
    # RETURNING, not rowcount: what ON CONFLICT DO NOTHING reports differs between drivers.
    return result.scalar_one_or_none() is not None


def revoke(
    s: Session, order_id: str, *, now: dt.datetime, event_id: str | None, reason: str
) -> int:
    """Revoke what the order granted; returns how many rows this call revoked."""
    result = s.execute(
        update(m.Entitlement)
        .where(m.Entitlement.order_id == order_id, m.Entitlement.status == "granted")
        .values(
            status="revoked", revoked_at=now, revoked_by_event=event_id, revoke_reason=reason[:200]
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def for_order(s: Session, order_id: str) -> list[m.Entitlement]:
    return list(s.scalars(select(m.Entitlement).where(m.Entitlement.order_id == order_id)))


def query(
    tenant_id: str,
    environment: str,
    *,
    uid: str | None = None,
    sku: str | None = None,
    status: str | None = None,
) -> Select[Any]:
    """Entitlements of one tenant and environment, optionally of one player, SKU or status."""
    stmt = select(m.Entitlement).where(
        m.Entitlement.tenant_id == tenant_id, m.Entitlement.environment == environment
    )
    if uid is not None:
        stmt = stmt.where(m.Entitlement.uid == uid)
    if sku:
        stmt = stmt.where(m.Entitlement.sku == sku)
    if status:
        stmt = stmt.where(m.Entitlement.status == status)
    return stmt


def view(row: m.Entitlement, *, tenant: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "object": "entitlement",
        "sku": row.sku,
        "quantity": row.quantity,
        "status": row.status,
        "order_id": row.order_id,
        "granted": int(row.granted_at.timestamp()),
        "revoked": int(row.revoked_at.timestamp()) if row.revoked_at else None,
        "revoke_reason": row.revoke_reason,
    }
    if tenant:
        out["user_id"] = row.uid
        out["livemode"] = row.environment == "live"
    return out
