"""A ``caisse worker`` process is SIGKILLed while deliveries are in flight; after a restart every
message is delivered and every attempt (the interrupted ones included) is in the log."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from tests.conftest import make_settings
from tests.support import partners

from caisse.config import Settings
from caisse.delivery import signing
from caisse.orders import messages
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.tenants import services as tenants

MESSAGES = 24


def slow_partner() -> partners.PartnerServer:
    async def behaviour(srv: Any, req: Any, rcv: Any, snd: Any) -> None:
        await asyncio.sleep(0.25)
        await snd({"type": "http.response.start", "status": 200, "headers": []})
        await snd({"type": "http.response.body", "body": b"ok"})

    return partners.PartnerServer(behaviour)


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CAISSE_DATABASE_URL": settings.database_url,
        "CAISSE_DATA_DIR": str(settings.data_dir),
        "CAISSE_MASTER_KEY": settings.master_keys[0].reveal(),
        "CAISSE_ADMIN_TOKEN": settings.admin_token.reveal(),
        "CAISSE_ALLOW_PRIVATE_TARGETS": "1",
        "CAISSE_JOB_LEASE_SECONDS": "5",  # the shortest lease settings accept
        "CAISSE_WORKER_POLL_INTERVAL": "0.1",
        "CAISSE_LOG_LEVEL": "WARNING",
    }
    code = "from caisse.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until(predicate: Any, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met in time")
        time.sleep(0.05)


def test_sigkill_mid_flight_loses_nothing(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, db_url, allow_private_targets=True)
    rt = Runtime.build(settings)
    try:
        secret = signing.new_secret()
        with slow_partner().expect_signed_by(secret) as partner:  # verifies every request
            now = rt.clock.now()
            with rt.db.write() as s:
                tenant, _ = tenants.create_tenant(s, rt.clock, "Crash SAS")
                s.add(
                    m.Endpoint(
                        id="ep_crash",
                        tenant_id=tenant.id,
                        environment="test",
                        url=partner.url,
                        event_types=[],
                        secrets=[
                            {
                                "secret": rt.box.encrypt(secret),
                                "created_at": now.isoformat(),
                                "expires_at": None,
                            }
                        ],
                        status="enabled",
                        created_at=now,
                        updated_at=now,
                    )
                )
                s.flush()
                for _ in range(MESSAGES):
                    messages.record(
                        s,
                        tenant_id=tenant.id,
                        environment="test",
                        type="order.paid",
                        data={"order": {"id": "ord_x"}},
                        order_id="ord_x",
                        now=now,
                    )
            first = start_worker(settings)
            try:
                wait_until(lambda: len(partner.requests) >= 6, "first requests")
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)

            def delivered() -> int:
                with rt.db.read() as s:
                    return int(
                        s.scalar(
                            select(func.count())
                            .select_from(m.Delivery)
                            .where(m.Delivery.status == "delivered")
                        )
                        or 0
                    )

            assert delivered() < MESSAGES  # the kill really happened mid-way
            second = start_worker(settings)
            try:
                wait_until(lambda: delivered() == MESSAGES, f"all delivered ({delivered()} so far)")
            finally:
                second.terminate()
                second.wait(timeout=15)
            received = Counter(r.header("webhook-id") for r in partner.requests)
        with rt.db.read() as s:
            attempts = s.execute(select(m.DeliveryAttempt)).scalars().all()
            message_ids = set(s.scalars(select(m.Message.id)))
        logged = Counter(a.webhook_id for a in attempts)
        assert set(received) == message_ids  # every message reached the partner
        for msg_id, n in received.items():
            assert logged[msg_id] >= n  # no request the partner saw is missing from the log
        assert sum(1 for a in attempts if a.outcome == "succeeded") == MESSAGES
        assert any(a.outcome == "interrupted" for a in attempts)
    finally:
        rt.close()
