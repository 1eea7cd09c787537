"""Typed settings, read once from ``CAISSE_*`` variables (and a ``.env`` file) and passed down.

Only ``create_app()`` and the CLI build a ``Settings``; nothing reads the environment at import
time. Every variable is optional for the embedded default: SQLite in the data folder, an operator
token and a master key generated into that folder on first start (mode 0600) and printed once.

Secrets never show themselves: they are ``Secret`` values, and URLs that may carry credentials
(``CAISSE_DATABASE_URL``'s password) are shown through :func:`redact_url` in ``repr(settings)``
and in :meth:`Settings.describe`, the view the CLI prints.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path

from caisse.errors import InvalidRequest

FIREBASE_CERTS_URL = (
    "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
)
DEFAULT_XSOLLA_API_BASE = "https://store.xsolla.com"
DEFAULT_XSOLLA_MERCHANT_API_BASE = "https://api.xsolla.com"


class Secret:
    """A string that does not show itself in ``repr``/``str`` (and so not in logs or tracebacks)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


# ``scheme://user:password@host``: the password runs to the last ``@`` (an unescaped ``@`` in a
# pasted password then hides too much rather than too little).
_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^:/@?#]*):.*@", re.DOTALL)
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?:password|passwd|pass|pwd|sslpassword|secret|token|api[_-]?key)=)[^&;#]*",
    re.IGNORECASE,
)
MASKED = "***"


def url_password(url: str) -> str | None:
    """The password written in a URL, so an error message quoting it can be scrubbed."""
    found = _URL_PASSWORD.match(url)
    if found is None:
        return None
    return url[len(found["head"]) + 1 : found.end() - 1] or None


def redact_url(url: str) -> str:
    """The URL with its password (and secret-looking query values) replaced by ``***``."""
    url = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASKED}@", url, count=1)
    return _QUERY_SECRET.sub(lambda m: f"{m['name']}{MASKED}", url)


def _read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _number(name: str, value: str | None, default: float, *, minimum: float) -> float:
    """A positive number from the environment, or a configuration error naming the variable."""
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number of seconds, not {value!r}") from None
    if not number >= minimum:  # also refuses nan
        raise InvalidRequest(f"{name} must be at least {minimum:g} seconds")
    return number


def make_private_dir(path: Path) -> None:
    """The data folder holds the master key, the operator token and the SQLite database:
    created for its owner only (0700). An existing folder's mode is left as the operator set it."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_private(path: Path, content: str) -> None:
    """Create a file readable by its owner only, atomically, never widening an existing mode."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)


@dataclass(frozen=True, repr=False)
class Settings:
    data_dir: Path
    database_url: str
    admin_token: Secret
    master_keys: tuple[Secret, ...]
    public_url: str = "http://127.0.0.1:8000"
    stripe_api_base: str | None = None
    stripe_connect_client_id: str | None = None
    stripe_connect_secret_keys: tuple[Secret, ...] = ()
    stripe_connect_webhook_secrets: tuple[Secret, ...] = ()
    xsolla_api_base: str = DEFAULT_XSOLLA_API_BASE
    xsolla_merchant_api_base_override: str | None = None
    xsolla_timeout: float = 10.0  # total seconds per Xsolla API call (CAISSE_XSOLLA_TIMEOUT)
    smtp_url: Secret | None = None
    mail_from: str = "caisse <no-reply@localhost>"
    firebase_certs_url: str = FIREBASE_CERTS_URL
    allow_private_targets: bool = False
    firebase_emulator: bool = False
    trusted_proxies: tuple[str, ...] = ()
    in_process_worker: bool = True
    # False: the in-process worker leaves PDF rendering and invoice emails to a render lane
    # (``caisse worker --render``), so ingest and deliveries never wait behind them.
    in_process_render: bool = True
    worker_poll_interval: float = 0.5
    worker_peek_interval: float = 0.02
    job_lease_seconds: float = 120.0
    log_level: str = "INFO"
    log_json: bool = True
    generated: tuple[str, ...] = field(default=(), compare=False)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={_redacted(getattr(self, f.name))!r}" for f in fields(self) if f.repr
        )
        return f"Settings({shown})"

    __str__ = __repr__

    def describe(self) -> dict[str, str]:
        """Every setting as an operator may see it: secrets hidden, URL passwords masked."""
        view: dict[str, str] = {}
        for f in fields(self):
            if f.name == "generated":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Secret):
                # A URL keeps its host and user (useful to check); any other secret is hidden.
                raw = value.reveal()
                view[f.name] = redact_url(raw) if "://" in raw else MASKED
            elif isinstance(value, tuple) and any(isinstance(v, Secret) for v in value):
                view[f.name] = f"{MASKED} ({len(value)} set)"
            elif isinstance(value, tuple):
                view[f.name] = ", ".join(str(v) for v in value)
            elif value is None:
                view[f.name] = ""
            else:
                view[f.name] = redact_url(str(value))
        view["xsolla_merchant_api_base"] = redact_url(self.xsolla_merchant_api_base)
        return view

    @property
    def xsolla_merchant_api_base(self) -> str:
        """Xsolla's merchant API (transaction reports): ``CAISSE_XSOLLA_MERCHANT_API_BASE``;
        else ``https://api.xsolla.com`` with the default Store API, or the same host as a custom
        ``CAISSE_XSOLLA_API_BASE`` (the simulator serves both)."""
        if self.xsolla_merchant_api_base_override:
            return self.xsolla_merchant_api_base_override
        if self.xsolla_api_base == DEFAULT_XSOLLA_API_BASE:
            return DEFAULT_XSOLLA_MERCHANT_API_BASE
        return self.xsolla_api_base

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(
        cls, env: dict[str, str] | None = None, *, create_missing: bool = True
    ) -> Settings:
        """Build settings from the environment; generate the operator token and master key when
        unset. ``generated`` names what was created now, so the CLI can print it exactly once."""
        source = dict(os.environ if env is None else env)
        dotenv = _read_dotenv(Path(source.get("CAISSE_ENV_FILE", ".env")))
        merged = {**dotenv, **source}

        def get(name: str) -> str | None:
            value = merged.get(name)
            return value if value not in (None, "") else None

        data_dir = Path(get("CAISSE_DATA_DIR") or ".caisse").expanduser().resolve()
        database_url = get("CAISSE_DATABASE_URL") or f"sqlite:///{data_dir / 'caisse.db'}"
        database_url = normalize_database_url(database_url)
        generated: list[str] = []

        admin = get("CAISSE_ADMIN_TOKEN")
        if admin is None:
            admin, made = _load_or_create(data_dir / "admin_token", "cat_", create_missing)
            if made:
                generated.append("admin_token")
        elif len(admin) < 16 or admin in {"changeme", "admin", "secret"}:
            raise InvalidRequest("CAISSE_ADMIN_TOKEN is too short or a placeholder")

        master = get("CAISSE_MASTER_KEY")
        if master is None:
            master, made = _load_or_create(data_dir / "master_key", "", create_missing, fernet=True)
            if made:
                generated.append("master_key")
        # Several comma-separated keys allow rotation: the first encrypts, all decrypt.
        master_keys = tuple(Secret(k.strip()) for k in master.split(",") if k.strip())

        smtp = get("CAISSE_SMTP_URL")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            admin_token=Secret(admin),
            master_keys=master_keys,
            public_url=(get("CAISSE_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
            stripe_api_base=get("CAISSE_STRIPE_API_BASE"),
            stripe_connect_client_id=get("CAISSE_STRIPE_CONNECT_CLIENT_ID"),
            stripe_connect_secret_keys=_secrets(get("CAISSE_STRIPE_CONNECT_SECRET_KEY")),
            stripe_connect_webhook_secrets=_secrets(get("CAISSE_STRIPE_CONNECT_WEBHOOK_SECRET")),
            xsolla_api_base=(get("CAISSE_XSOLLA_API_BASE") or DEFAULT_XSOLLA_API_BASE).rstrip("/"),
            xsolla_merchant_api_base_override=(
                (get("CAISSE_XSOLLA_MERCHANT_API_BASE") or "").rstrip("/") or None
            ),
            xsolla_timeout=_xsolla_timeout(get("CAISSE_XSOLLA_TIMEOUT")),
            smtp_url=Secret(smtp) if smtp else None,
            mail_from=get("CAISSE_MAIL_FROM") or "caisse <no-reply@localhost>",
            firebase_certs_url=get("CAISSE_FIREBASE_CERTS_URL") or FIREBASE_CERTS_URL,
            allow_private_targets=_bool(get("CAISSE_ALLOW_PRIVATE_TARGETS")),
            firebase_emulator=_bool(get("CAISSE_FIREBASE_EMULATOR")),
            trusted_proxies=tuple(
                p.strip() for p in (get("CAISSE_TRUSTED_PROXIES") or "").split(",") if p.strip()
            ),
            in_process_worker=not _bool(get("CAISSE_NO_WORKER")),
            in_process_render=not _bool(get("CAISSE_NO_RENDER")),
            worker_poll_interval=_number(
                "CAISSE_WORKER_POLL_INTERVAL",
                get("CAISSE_WORKER_POLL_INTERVAL"),
                0.5,
                minimum=0.01,
            ),
            worker_peek_interval=_number(
                "CAISSE_WORKER_PEEK_INTERVAL",
                get("CAISSE_WORKER_PEEK_INTERVAL"),
                0.02,
                minimum=0.0,
            ),
            job_lease_seconds=_number(
                "CAISSE_JOB_LEASE_SECONDS", get("CAISSE_JOB_LEASE_SECONDS"), 120.0, minimum=5
            ),
            log_level=(get("CAISSE_LOG_LEVEL") or "INFO").upper(),
            log_json=(get("CAISSE_LOG_FORMAT") or "json") == "json",
            generated=tuple(generated),
        )


def _xsolla_timeout(value: str | None) -> float:
    """1 to 20 s: the player endpoint's idempotency claim must outlive the call (30 s)."""
    try:
        seconds = float(value) if value else 10.0
    except ValueError:
        raise InvalidRequest("CAISSE_XSOLLA_TIMEOUT is a number of seconds") from None
    if not 1.0 <= seconds <= 20.0:
        raise InvalidRequest("CAISSE_XSOLLA_TIMEOUT is between 1 and 20 seconds")
    return seconds


def _redacted(value: object) -> object:
    return redact_url(value) if isinstance(value, str) else value


def _secrets(value: str | None) -> tuple[Secret, ...]:
    """A comma-separated list of secrets (e.g. one test and one live key, or a rolled one)."""
    return tuple(Secret(v.strip()) for v in (value or "").split(",") if v.strip())


def normalize_database_url(url: str) -> str:
    """Accept the URLs people paste (``postgres://``, ``postgresql://``) and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _load_or_create(
    path: Path, prefix: str, create: bool, *, fernet: bool = False
) -> tuple[str, bool]:
    if path.is_file():
        return path.read_text(encoding="utf-8").strip(), False
    if not create:
        raise InvalidRequest(f"{path.name} is not set and does not exist in {path.parent}")
    if fernet:
        from cryptography.fernet import Fernet

        value = Fernet.generate_key().decode()
    else:
        value = prefix + secrets.token_urlsafe(32)
    try:
        _write_private(path, value + "\n")
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text(encoding="utf-8").strip(), False
    return value, True
