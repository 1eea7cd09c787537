"""Catalogue items: set by the tenant (``PUT /v1/catalog/items/{sku}``), read by the tenant and,
without secrets or ids, by the game client.

A SKU follows Xsolla's rule (Latin letters, digits, ``.``, ``-``, ``_``) so the same SKU can be
sent to Xsolla's token API unchanged. The price is what the player pays, tax included, in minor
units; it is the expected amount an ``order_paid`` webhook is checked against, so it must match
the price configured in Xsolla's Publisher Account.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.clock import Clock
from caisse.domain.orders import MAX_AMOUNT
from caisse.errors import InvalidRequest, NotFound
from caisse.money import normalize_currency, to_decimal
from caisse.storage import models as m
from caisse.storage.pagination import clamp_limit
from caisse.tenants.services import Caller

STATUSES = ("available", "unavailable")
SKU_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def check_sku(sku: str) -> str:
    if not SKU_RE.match(sku or ""):
        raise InvalidRequest(
            "A SKU is 1 to 100 Latin letters, digits, '.', '-' or '_'", param="sku"
        )
    return sku


def put_item(
    s: Session,
    clock: Clock,
    caller: Caller,
    sku: str,
    *,
    name: str,
    description: str | None,
    amount: int,
    currency: str,
    status: str,
) -> tuple[m.CatalogItem, bool]:
    """Create or replace one SKU of the caller's environment; returns (row, created)."""
    check_sku(sku)
    if not 1 <= amount <= MAX_AMOUNT:
        raise InvalidRequest("price.amount is a positive integer in minor units", param="price")
    if status not in STATUSES:
        raise InvalidRequest("status is 'available' or 'unavailable'", param="status")
    currency = normalize_currency(currency)
    now = clock.now()
    row = find_item(s, caller.tenant_id, caller.environment, sku)
    created = row is None
    if row is None:
        row = m.CatalogItem(
            id=ids.new_id("catalog_item"),
            tenant_id=caller.tenant_id,
            environment=caller.environment,
            sku=sku,
            created_at=now,
        )
        s.add(row)
    row.name = name.strip()
    row.description = description.strip() if description else None
    row.amount = amount
    row.currency = currency
    row.status = status
    row.updated_at = now
    s.flush()
    return row, created


def find_item(s: Session, tenant_id: str, environment: str, sku: str) -> m.CatalogItem | None:
    return s.execute(
        select(m.CatalogItem).where(
            m.CatalogItem.tenant_id == tenant_id,
            m.CatalogItem.environment == environment,
            m.CatalogItem.sku == sku,
        )
    ).scalar_one_or_none()


def get_item(s: Session, tenant_id: str, environment: str, sku: str) -> m.CatalogItem:
    row = find_item(s, tenant_id, environment, sku)
    if row is None:
        raise NotFound(f"No such SKU: {sku!r}", param="sku")
    return row


def item_view(row: m.CatalogItem) -> dict[str, Any]:
    """The tenant's view of an item."""
    return {
        "id": row.id,
        "object": "catalog_item",
        "livemode": row.environment == "live",
        **public_view(row),
        "status": row.status,
        "created": int(row.created_at.timestamp()),
        "updated": int(row.updated_at.timestamp()),
    }


def public_page(
    s: Session, tenant_id: str, environment: str, *, limit: int | None, starting_after: str | None
) -> tuple[list[m.CatalogItem], bool]:
    """One page of the public catalogue, by SKU in ascending order: the public view has no ids,
    so its cursor is the SKU (``starting_after=<last sku of the page>``)."""
    n = clamp_limit(limit)
    stmt = select(m.CatalogItem).where(
        m.CatalogItem.tenant_id == tenant_id, m.CatalogItem.environment == environment
    )
    if starting_after is not None:
        check_sku(starting_after)
        stmt = stmt.where(m.CatalogItem.sku > starting_after)
    rows = list(s.scalars(stmt.order_by(m.CatalogItem.sku.asc()).limit(n + 1)))
    return rows[:n], len(rows) > n


def public_view(row: m.CatalogItem) -> dict[str, Any]:
    """What a game client sees: no ids, no timestamps."""
    return {
        "sku": row.sku,
        "name": row.name,
        "description": row.description,
        "price": {
            "amount": row.amount,
            "currency": row.currency,
            "display": str(to_decimal(row.amount, row.currency)),
        },
        "available": row.status == "available",
    }
