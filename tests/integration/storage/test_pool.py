"""PostgreSQL's pooled connections: pinged before use only after sitting idle, and replaced
when the server closed them meanwhile (a restart, a failover, an idle timeout)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from caisse.storage import db as dbmod
from caisse.storage.db import Database


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url, pool_size=3)
    yield database
    database.dispose()


def backends(database: Database) -> set[int]:
    with database.read() as s:
        return {int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())}


def pings(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    real = database.engine.dialect.do_ping

    def counting(dbapi_conn: object) -> bool:
        seen.append(1)
        return bool(real(dbapi_conn))

    monkeypatch.setattr(database.engine.dialect, "do_ping", counting)
    return seen


def test_a_connection_used_moments_ago_is_not_pinged(pg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(dbmod, "IDLE_PING_SECONDS", 3600.0)
    seen = pings(pg, monkeypatch)
    for _ in range(5):
        backends(pg)
    assert seen == []


def test_an_idle_connection_closed_by_the_server_is_replaced(pg, pg_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    first = backends(pg)
    monkeypatch.setattr(dbmod, "IDLE_PING_SECONDS", 0.0)  # every pooled connection is idle
    seen = pings(pg, monkeypatch)
    plain_url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain_url, autocommit=True) as other:  # as a server restart would
        for pid in first:
            other.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    after = backends(pg)  # no error: the ping found it dead and the pool made a new one
    assert seen
    assert after.isdisjoint(first)
