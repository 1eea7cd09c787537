"""Invoice e-mails composed and sent to a real SMTP server (aiosmtpd), then read back."""

from __future__ import annotations

import asyncio
import datetime as dt
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from caisse.errors import DeliveryError, InvalidRequest
from caisse.mail.compose import attachment_filename, compose_invoice_email
from caisse.mail.smtp import MailError, SmtpConfig, parse_smtp_url, send

PDF = b"%PDF-1.7\n% fake invoice for the mail tests\n%%EOF\n"
SENDER = "Appart Compta <factures@appart-compta.example>"
NOW = dt.datetime(2026, 1, 31, 9, 30, tzinfo=dt.UTC)


def compose(document, recipient: str = "jeanne@example.org", **overrides) -> EmailMessage:
    return compose_invoice_email(
        document(**overrides), PDF, sender=SENDER, recipient=recipient, now=NOW
    )


def config_for(server, **kwargs) -> SmtpConfig:
    return SmtpConfig(host=server.host, port=server.port, timeout=5, **kwargs)


def test_message_reaches_the_server_with_its_attachment(smtp_server, document) -> None:
    server = smtp_server()
    message = compose(document)
    message_id = asyncio.run(send(config_for(server), message))

    assert len(server.recorder.envelopes) == 1
    envelope = server.recorder.envelopes[0]
    assert envelope.rcpt_tos == ["jeanne@example.org"]
    assert envelope.mail_from == "factures@appart-compta.example"
    received = message_from_bytes(envelope.original_content, policy=policy.default)
    assert isinstance(received, EmailMessage)
    assert received["Message-ID"] == message_id
    assert message_id.endswith("@appart-compta.example>")
    assert received["Subject"] == "Votre facture F-2026/000042 – Appart Compta SAS"
    attachments = list(received.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["F-2026-000042.pdf"]
    assert attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_content() == PDF
    text = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert "Montant payé : 220,00 €." in text.get_content()
    assert "<strong>220,00 €</strong>" in html.get_content()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_auth_required_server(smtp_server, document) -> None:
    server = smtp_server(auth=True)
    config = config_for(server, username=server.user, password=server.password)
    asyncio.run(send(config, compose(document)))
    assert len(server.recorder.envelopes) == 1

    wrong = config_for(server, username=server.user, password="wrong")
    with pytest.raises(MailError) as info:
        asyncio.run(send(wrong, compose(document)))
    assert info.value.permanent
    assert info.value.smtp_code == 535


def test_5xx_rejection_is_permanent(smtp_server, document) -> None:
    server = smtp_server()
    with pytest.raises(MailError) as info:
        asyncio.run(send(config_for(server), compose(document, recipient=server.rejected)))
    assert isinstance(info.value, DeliveryError)
    assert info.value.permanent
    assert info.value.smtp_code == 550
    assert server.recorder.envelopes == []


def test_4xx_answer_is_transient(smtp_server, document) -> None:
    server = smtp_server()
    with pytest.raises(MailError) as info:
        asyncio.run(send(config_for(server), compose(document, recipient=server.deferred)))
    assert not info.value.permanent
    assert info.value.smtp_code == 451


def test_unreachable_server_is_transient(document, unused_port) -> None:
    config = SmtpConfig(host="127.0.0.1", port=unused_port(), timeout=2)
    with pytest.raises(MailError) as info:
        asyncio.run(send(config, compose(document)))
    assert not info.value.permanent


def test_send_sets_a_message_id_when_missing(smtp_server, document) -> None:
    server = smtp_server()
    message = compose(document)
    del message["Message-ID"]
    message_id = asyncio.run(send(config_for(server), message))
    assert message_id.startswith("<")
    received = message_from_bytes(server.recorder.envelopes[0].original_content)
    assert received["Message-ID"] == message_id


# -- composition -----------------------------------------------------------------------------


def test_english_credit_note_in_test_mode(document) -> None:
    message = compose(
        document,
        kind="credit_note",
        number="A-9",
        related_invoice_number="F-2026/000042",
        language="en",
        test_mode=True,
    )
    assert message["Subject"] == "[TEST] Your credit note A-9 from Appart Compta SAS"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    content = body.get_content()
    assert content.startswith("[TEST]")
    assert "credit note A-9 dated 2026-01-31, for invoice F-2026/000042" in content
    assert "Amount refunded: €220.00." in content
    assert message["Content-Language"] == "en"
    assert message["Date"] == "Sat, 31 Jan 2026 09:30:00 +0000"


def test_html_escapes_names(document) -> None:
    from caisse.invoices.document import Party

    buyer = Party("<script>alert(1)</script>", ("x",), "1", "Lyon", "FR")
    html = compose(document, buyer=buyer).get_body(preferencelist=("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert "&lt;script&gt;" in html.get_content()


def test_refuses_header_injection(document) -> None:
    with pytest.raises(InvalidRequest):
        compose(document, recipient="a@example.org\r\nBcc: all@example.org")
    with pytest.raises(InvalidRequest):
        compose(document, recipient="not an address")


def test_attachment_filename() -> None:
    assert attachment_filename("F-2026/0001") == "F-2026-0001.pdf"
    assert attachment_filename("../../etc") == "etc.pdf"
    assert attachment_filename("///") == "invoice.pdf"


# -- CAISSE_SMTP_URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user", "password"),
    [
        ("smtp://mail.example.org", "mail.example.org", 25, "none", None, None),
        ("smtp://u:p@mail.example.org:2525", "mail.example.org", 2525, "none", "u", "p"),
        ("smtps://u%40x.org:p%2Fw%3A@smtp.example.org", "smtp.example.org", 465, "implicit",
         "u@x.org", "p/w:"),
        ("smtp+starttls://u:p@smtp.example.org", "smtp.example.org", 587, "starttls", "u", "p"),
        ("smtp://u:p@smtp.example.org:25?starttls=1", "smtp.example.org", 25, "starttls", "u", "p"),
    ],
)  # fmt: skip
def test_parse_smtp_url(url, host, port, tls, user, password) -> None:
    config = parse_smtp_url(url)
    assert (config.host, config.port, config.tls) == (host, port, tls)
    assert (config.username, config.password) == (user, password)
    assert config.timeout == 30.0


def test_parse_smtp_url_timeout() -> None:
    assert parse_smtp_url("smtp://h?timeout=5").timeout == 5.0


@pytest.mark.parametrize(
    "url",
    [
        "http://u:hunter2@h",
        "smtp://u:hunter2@",
        "smtp://u:hunter2@h:notaport",
        "smtp://u:hunter2@h?timeout=0",
        "smtp://u:hunter2@h?timeout=soon",
    ],
)
def test_parse_smtp_url_errors_hide_the_password(url) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_smtp_url(url)
    assert "hunter2" not in str(info.value)


def test_password_never_in_repr() -> None:
    config = parse_smtp_url("smtps://user:hunter2@smtp.example.org")
    assert "hunter2" not in repr(config)
    assert "user" in repr(config)
