"""Send mail over SMTP with aiosmtplib, configured by ``CAISSE_SMTP_URL``.

URL forms (user and password are percent-decoded; both are optional):

* ``smtp://user:pass@host:port`` — plain SMTP (default port 25); STARTTLS is used when the
  server offers it (aiosmtplib's default), not required;
* ``smtp+starttls://…`` or ``smtp://…?starttls=1`` — STARTTLS required (default port 587);
* ``smtps://…`` — implicit TLS from the first byte (default port 465).

``?timeout=SECONDS`` overrides the 30 s default. TLS certificates are verified against the
system's trust store; ``?cafile=/path/ca.pem`` trusts a private CA instead (a company relay),
and ``?verify=false`` turns verification off — for a development relay only, never in
production: the password and the buyers' invoices would go to whoever answers.

Failures become ``MailError``: ``permanent`` when the server answered 5xx (or the setup cannot
work, e.g. STARTTLS unsupported, an unreadable ``cafile``), so the caller stops retrying; 4xx
answers, timeouts and network errors are transient.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from caisse.errors import DeliveryError, InvalidRequest

__all__ = ["DEFAULT_TIMEOUT", "MailError", "SmtpConfig", "parse_smtp_url", "send"]

DEFAULT_TIMEOUT = 30.0
TlsMode = Literal["none", "starttls", "implicit"]

_DEFAULT_PORTS: dict[TlsMode, int] = {"none": 25, "starttls": 587, "implicit": 465}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class MailError(DeliveryError):
    """The SMTP server refused the message or could not be reached."""

    code = "mail_error"

    def __init__(self, message: str, *, permanent: bool, smtp_code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.smtp_code = smtp_code


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to send; the password never shows in ``repr``."""

    host: str
    port: int
    tls: TlsMode = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    cafile: str | None = None  # PEM bundle of the CAs to trust instead of the system's
    verify: bool = True  # False: no certificate check (development relays only)

    def tls_context(self) -> ssl.SSLContext:
        """The context for STARTTLS or implicit TLS (system CAs, or ``cafile``)."""
        try:
            context = ssl.create_default_context(cafile=self.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise MailError(
                f"CAISSE_SMTP_URL cafile cannot be read: {exc}", permanent=True
            ) from exc
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def parse_smtp_url(url: str) -> SmtpConfig:
    """Parse ``CAISSE_SMTP_URL``; errors never echo the URL, which may hold a password."""
    parts = urlsplit(url.strip())
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    tls: TlsMode
    if parts.scheme == "smtps":
        tls = "implicit"
    elif parts.scheme == "smtp+starttls":
        tls = "starttls"
    elif parts.scheme == "smtp":
        tls = "starttls" if query.get("starttls", "").lower() in _TRUE else "none"
    else:
        raise InvalidRequest(
            "CAISSE_SMTP_URL must start with smtp://, smtps:// or smtp+starttls://",
            param="CAISSE_SMTP_URL",
        )
    try:
        host, port = parts.hostname, parts.port
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
    except ValueError:
        raise InvalidRequest(
            "CAISSE_SMTP_URL has an invalid port or timeout", param="CAISSE_SMTP_URL"
        ) from None
    if not host:
        raise InvalidRequest("CAISSE_SMTP_URL needs a host", param="CAISSE_SMTP_URL")
    if timeout <= 0:
        raise InvalidRequest("CAISSE_SMTP_URL timeout must be positive", param="CAISSE_SMTP_URL")
    verify = query.get("verify", "true").lower()
    if verify not in _TRUE | _FALSE:
        raise InvalidRequest("CAISSE_SMTP_URL verify is true or false", param="CAISSE_SMTP_URL")
    return SmtpConfig(
        host=host,
        port=port or _DEFAULT_PORTS[tls],
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        timeout=timeout,
        cafile=query.get("cafile") or None,
        verify=verify in _TRUE,
    )


async def send(config: SmtpConfig, message: EmailMessage) -> str:
    """Send one message; return its Message-ID (set here when the message has none)."""
    if not message.get("Message-ID"):
        domain = parseaddr(str(message.get("From", "")))[1].rpartition("@")[2]
        message["Message-ID"] = make_msgid(domain=domain or None)
    message_id = str(message["Message-ID"])
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.tls == "implicit",
            # None lets aiosmtplib upgrade when offered; True requires it.
            start_tls=True if config.tls == "starttls" else None,
            tls_context=config.tls_context(),
            timeout=config.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [refused.code for refused in exc.recipients]
        permanent = all(500 <= code < 600 for code in codes)
        raise MailError(
            f"SMTP server refused every recipient ({', '.join(map(str, codes))})",
            permanent=permanent,
            smtp_code=codes[0] if codes else None,
        ) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise MailError(
            f"SMTP server answered {exc.code}: {exc.message}",
            permanent=500 <= exc.code < 600,
            smtp_code=exc.code,
        ) from exc
    except aiosmtplib.SMTPNotSupported as exc:
        raise MailError(f"SMTP server does not support: {exc}", permanent=True) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        # Timeouts, refused connections, disconnections: worth retrying later.
        raise MailError(f"SMTP server unreachable: {exc}", permanent=False) from exc
    return message_id
