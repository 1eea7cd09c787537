"""The group-commit writer: every waiting request is released only after its batch commits, a
bad row fails only itself, and a database that is down fails every request (503), on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.support.inbound import row as inbound_row

from caisse.clock import UTC
from caisse.errors import StorageUnavailable
from caisse.intake.writer import IngestWriter
from caisse.storage import models as m
from caisse.storage.db import Database


@pytest.fixture
def tenant(rt):  # type: ignore[no-untyped-def]
    with rt.db.write() as s:
        s.add(m.Tenant(id="ten_w", name="w", legal={}, created_at=dt.datetime.now(UTC)))
    return "ten_w"


def row(event_id: str, tenant_id: str = "ten_w") -> dict[str, Any]:
    return inbound_row(
        event_id, b'{"id": "%s"}' % event_id.encode(), dt.datetime.now(UTC), tenant_id
    )


def stored(rt) -> list[str]:  # type: ignore[no-untyped-def]
    with rt.db.read() as s:
        return sorted(s.execute(select(m.InboundEvent.provider_event_id)).scalars())


def test_concurrent_submits_are_all_committed_before_they_return(rt, tenant):
    writer = IngestWriter(rt.db)
    seen_at_return: list[int] = []

    async def one(i: int) -> None:
        await writer.submit(row(f"evt_{i:03d}"))
        with rt.db.read() as s:  # committed: visible from another connection
            seen = s.execute(
                select(func.count()).where(m.InboundEvent.provider_event_id == f"evt_{i:03d}")
            ).scalar_one()
        seen_at_return.append(seen)

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(150)))

    try:
        asyncio.run(main())
    finally:
        writer.stop()
    assert seen_at_return == [1] * 150
    assert stored(rt) == [f"evt_{i:03d}" for i in range(150)]
    assert writer.stored == 150
    assert 1 <= writer.batches <= 150


def test_a_duplicate_is_released_without_a_second_row(rt, tenant):
    writer = IngestWriter(rt.db)

    async def main() -> None:
        await asyncio.gather(*(writer.submit(row("evt_same")) for _ in range(20)))
        await writer.submit(row("evt_same"))

    try:
        asyncio.run(main())
    finally:
        writer.stop()
    assert stored(rt) == ["evt_same"]


def test_a_bad_row_fails_alone(rt, tenant):
    writer = IngestWriter(rt.db)

    async def main() -> list[object]:
        return await asyncio.gather(
            writer.submit(row("evt_good_1")),
            writer.submit(row("evt_orphan", tenant_id="ten_nobody")),  # foreign key violation
            writer.submit(row("evt_good_2")),
            return_exceptions=True,
        )

    try:
        results = asyncio.run(main())
    finally:
        writer.stop()
    assert results[0] is None
    assert isinstance(results[1], StorageUnavailable)
    assert results[2] is None
    assert stored(rt) == ["evt_good_1", "evt_good_2"]


def test_a_database_that_is_down_fails_every_waiting_request(tmp_path):
    db = Database("postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    writer = IngestWriter(db)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(writer.submit(row(f"evt_{i}")) for i in range(5)), return_exceptions=True
        )

    try:
        results = asyncio.run(main())
    finally:
        writer.stop()
        db.dispose()
    assert all(isinstance(r, StorageUnavailable) for r in results)


def test_requests_of_one_loop_iteration_share_one_batch(rt, tenant):
    writer = IngestWriter(rt.db)

    async def main() -> None:
        # gather starts every task in the same loop iteration: one hand-over, one commit.
        await asyncio.gather(*(writer.submit(row(f"evt_{i:03d}")) for i in range(100)))

    try:
        asyncio.run(main())
    finally:
        writer.stop()
    assert writer.batches == 1
    assert len(stored(rt)) == 100


def test_a_kept_connection_closed_by_the_server_is_replaced(rt, tenant):
    if rt.db.is_sqlite:
        pytest.skip("a PostgreSQL server closes connections; SQLite has none to lose")
    writer = IngestWriter(rt.db)

    async def main() -> None:
        await writer.submit(row("evt_before"))
        held = writer._batch_writer._held
        assert held is not None
        pid = held.driver_connection.info.backend_pid  # type: ignore[union-attr]
        with rt.db.engine.connect() as conn:  # as a server restart would
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)}, 5000)")
        await writer.submit(row("evt_after"))  # no 503: sent again on a fresh connection
        fresh = writer._batch_writer._held
        assert fresh is not None
        assert fresh.driver_connection.info.backend_pid != pid  # type: ignore[union-attr]

    try:
        asyncio.run(main())
    finally:
        writer.stop()
    assert stored(rt) == ["evt_after", "evt_before"]
