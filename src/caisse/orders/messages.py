"""Partner messages, written in the transaction of the change they report (the outbox).

Each message is stored once per order change; ``SINKS`` are called in the same transaction so
that delivery can fan a message out to the matching endpoints of the order's environment
without a second, separable step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from caisse import ids
from caisse.storage import batch
from caisse.storage import models as m

_INSERT = insert(m.Message.__table__)  # type: ignore[arg-type]
Sink = Callable[[Session, m.Message, dt.datetime], None]
SINKS: list[Sink] = []


def record(
    session: Session,
    *,
    tenant_id: str,
    environment: str,
    type: str,
    data: dict[str, Any],
    order_id: str | None,
    now: dt.datetime,
) -> m.Message:
    values: dict[str, Any] = {
        "id": ids.new_id("message"),
        "tenant_id": tenant_id,
        "environment": environment,
        "type": type,
        "order_id": order_id,
        "payload": {
            "type": type,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": data,
        },
        "created_at": now,
    }
    # A plain insert, not the unit of work: nothing else of this transaction is flushed with
    # it (held with the transaction's other plain writes, in a batch).
    batch.defer(session, _INSERT, [values])
    message = m.Message(**values)
    _load_sinks()
    for sink in SINKS:
        sink(session, message, now)
    return message


def _load_sinks() -> None:
    # Imported lazily (delivery imports this module): every process that records messages
    # fans them out, whichever entry point (worker, reconcile, API) it came through.
    import caisse.delivery.outbox
    import caisse.invoices.sink  # noqa: F401
