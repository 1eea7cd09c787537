"""A real SMTP server (aiosmtpd) for the invoice tests, and caisse configured to use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from tests.conftest import make_settings
from tests.support.servers import free_port

from caisse.config import Secret, Settings

SENDER = "Factures <factures@caisse.example>"


class Recorder:
    """Keeps every message the server accepted; a test asserts on it (or on its emptiness)."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.connections = 0
        self.defer = 0  # answer "451 try again later" to this many messages first
        self.deferred: list[bytes] = []

    async def handle_EHLO(
        self, server: Any, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> Any:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.defer > 0:
            self.defer -= 1
            self.deferred.append(bytes(envelope.original_content or b""))
            return "451 4.3.0 Try again later"
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[Recorder]:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    recorder.port = controller.port  # type: ignore[attr-defined]
    yield recorder
    controller.stop()


@pytest.fixture
def settings(tmp_path: Path, db_url: str, smtp: Recorder) -> Settings:
    url = f"smtp://127.0.0.1:{smtp.port}"  # type: ignore[attr-defined]
    return make_settings(
        tmp_path, db_url, smtp_url=Secret(url), mail_from=SENDER, allow_private_targets=True
    )
