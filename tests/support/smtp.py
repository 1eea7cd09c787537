"""A real SMTP server (aiosmtpd) on loopback that records what it accepts, for the tests of
caisse's mail (invoices, credit notes, invitations)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from tests.support.servers import free_port


class Recorder:
    """Keeps every message the server accepted; a test asserts on it (or on its emptiness)."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.connections = 0
        self.defer = 0  # answer "451 try again later" to this many messages first
        self.deferred: list[bytes] = []
        self.port = 0

    @property
    def messages(self) -> list[EmailMessage]:
        """The accepted messages, parsed."""
        return [
            message_from_bytes(e.content, policy=policy.default)  # type: ignore[arg-type]
            for e in self.envelopes
        ]

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


@contextlib.contextmanager
def smtp_server() -> Iterator[Recorder]:
    """A recording server on a free loopback port (``recorder.port``)."""
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    recorder.port = controller.port
    try:
        yield recorder
    finally:
        controller.stop()
