"""STARTTLS and implicit TLS against a real aiosmtpd with a private CA, AUTH over TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
from urllib.parse import quote

import pytest

from caisse.mail.compose import compose_invoice_email
from caisse.mail.smtp import MailError, parse_smtp_url, send

SENDER = "Appart Compta <factures@appart-compta.example>"
NOW = dt.datetime(2026, 1, 31, 9, 30, tzinfo=dt.UTC)
# aiosmtpd warns about AUTH "without TLS" on SMTPS, where it cannot see the TLS layer.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def url_for(server, scheme: str, query: str) -> str:
    auth = f"{quote(server.user, safe='')}:{quote(server.password, safe='')}"
    return f"{scheme}://{auth}@{server.host}:{server.port}?timeout=5&{query}"


def message(document):
    return compose_invoice_email(
        document(), b"%PDF-1.7\n%%EOF\n", sender=SENDER, recipient="jeanne@example.org", now=NOW
    )


@pytest.mark.parametrize(("implicit", "scheme"), [(False, "smtp+starttls"), (True, "smtps")])
def test_tls_with_a_private_ca_and_auth(tls_smtp_server, document, implicit, scheme) -> None:
    server = tls_smtp_server(implicit=implicit)
    config = parse_smtp_url(url_for(server, scheme, f"cafile={quote(server.cafile)}"))
    assert config.cafile == server.cafile
    message_id = asyncio.run(send(config, message(document)))
    (envelope,) = server.recorder.envelopes
    assert envelope.rcpt_tos == ["jeanne@example.org"]
    assert message_id.encode() in envelope.original_content


@pytest.mark.parametrize(("implicit", "scheme"), [(False, "smtp+starttls"), (True, "smtps")])
def test_an_untrusted_certificate_is_refused(tls_smtp_server, document, implicit, scheme) -> None:
    server = tls_smtp_server(implicit=implicit)
    with pytest.raises(MailError) as info:
        asyncio.run(send(parse_smtp_url(url_for(server, scheme, "")), message(document)))
    assert "certificate" in str(info.value).lower() or "ssl" in str(info.value).lower()
    assert server.recorder.envelopes == []


def test_verify_false_accepts_any_certificate(tls_smtp_server, document) -> None:
    server = tls_smtp_server(implicit=True)
    config = parse_smtp_url(url_for(server, "smtps", "verify=false"))
    asyncio.run(send(config, message(document)))
    assert len(server.recorder.envelopes) == 1


def test_starttls_is_required_by_the_server(tls_smtp_server, document) -> None:
    """A plain smtp:// URL still upgrades when offered, and the server insists on it."""
    server = tls_smtp_server(implicit=False)
    config = parse_smtp_url(url_for(server, "smtp", f"cafile={quote(server.cafile)}"))
    asyncio.run(send(config, message(document)))
    assert len(server.recorder.envelopes) == 1


def test_bad_cafile_and_verify_values() -> None:
    config = parse_smtp_url("smtps://h?cafile=/nonexistent/ca.pem")
    with pytest.raises(MailError) as info:
        config.tls_context()
    assert info.value.permanent
    from caisse.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        parse_smtp_url("smtps://h?verify=maybe")
