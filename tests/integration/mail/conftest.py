"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the mail tests, and a document to send."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from caisse.invoices.document import InvoiceDocument, InvoiceLine, Party

USER, PASSWORD = "caisse", "s3cr3t pass/word"
REJECTED = "nobody@example.org"  # the server answers 550 for this recipient
DEFERRED = "later@example.org"  # the server answers 451 at DATA for this recipient


class Recorder:
    """aiosmtpd handler that keeps what it received and refuses on demand."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address == REJECTED:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if DEFERRED in envelope.rcpt_tos:
            return "451 4.3.0 Try again later"
        self.envelopes.append(envelope)
        return "250 Message accepted"


def _authenticate(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(),
        auth_data.password.decode(),
    ) == (USER, PASSWORD)
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A running aiosmtpd server, what it received, and how to make it refuse."""

    controller: Controller
    recorder: Recorder
    host: str
    port: int
    user: str = USER
    password: str = PASSWORD
    rejected: str = REJECTED
    deferred: str = DEFERRED


@pytest.fixture
def unused_port() -> Callable[[], int]:
    return free_port


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., Server]]:
    started: list[Controller] = []

    def start(*, auth: bool = False) -> Server:
        recorder = Recorder()
        options: dict[str, Any] = {}
        if auth:
            options = {
                "authenticator": _authenticate,
                "auth_required": True,
                "auth_require_tls": False,
            }
        controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), **options)
        controller.start()
        started.append(controller)
        return Server(controller, recorder, controller.hostname, controller.port)

    yield start
    for controller in started:
        controller.stop()


@dataclass
class TlsServer(Server):
    cafile: str = ""


@pytest.fixture
def tls_smtp_server(tmp_path: Path) -> Iterator[Callable[..., TlsServer]]:
    """aiosmtpd over TLS with a self-signed certificate for ``localhost`` (its own CA), AUTH
    required: ``implicit=False`` requires STARTTLS first, ``implicit=True`` is SMTPS."""
    from tests.support.partners import make_tls_files

    certfile, keyfile = make_tls_files(tmp_path, hostname="localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    started: list[Controller] = []

    def start(*, implicit: bool) -> TlsServer:
        recorder = Recorder()
        options: dict[str, Any] = {"authenticator": _authenticate, "auth_required": True}
        if implicit:  # the whole connection is TLS: aiosmtpd cannot tell, so allow AUTH
            options.update(ssl_context=context, auth_require_tls=False)
        else:
            options.update(tls_context=context, require_starttls=True)
        controller = Controller(recorder, hostname="127.0.0.1", port=free_port(), **options)
        controller.start()
        started.append(controller)
        return TlsServer(controller, recorder, "localhost", controller.port, cafile=str(certfile))

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def document() -> Callable[..., InvoiceDocument]:
    def build(**overrides: Any) -> InvoiceDocument:
        fields: dict[str, Any] = {
            "kind": "invoice",
            "number": "F-2026/000042",
            "issue_date": dt.date(2026, 1, 31),
            "currency": "eur",
            "seller": Party("Appart Compta SAS", ("12 rue de la Paix",), "75002", "Paris", "FR"),
            "buyer": Party("Jeanne Dupont", ("3 avenue Foch",), "69006", "Lyon", "FR"),
            "lines": (InvoiceLine("Nuitée", 2, 11_000, Decimal(10)),),
            "payment_date": dt.date(2026, 1, 30),
            "payment_method": "card",
            "order_reference": "ord_7Hq2",
        }
        fields.update(overrides)
        return InvoiceDocument(**fields)

    return build
