"""What every command shares: settings, a runtime, clean error output (never a traceback).

Only light modules are imported here: the runtime (SQLAlchemy, the Stripe SDK, HTTP clients)
is imported by the commands that use it, so ``caisse --help`` starts fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from caisse.config import MASKED, Settings, redact_url, url_password
from caisse.errors import CaisseError

if TYPE_CHECKING:
    from caisse.runtime import Runtime

console = Console(stderr=True)
out = Console()


def settings() -> Settings:
    try:
        s = Settings.from_env()
    except CaisseError as exc:
        fail(exc.message)
    if "admin_token" in s.generated:
        console.print(
            f"[bold yellow]Operator token created[/] (shown once; stored in "
            f"{s.data_dir / 'admin_token'}, mode 0600):\n  {s.admin_token.reveal()}"
        )
    if "master_key" in s.generated:
        console.print(
            f"[yellow]Master key created[/] in {s.data_dir / 'master_key'} (mode 0600)."
            " Back it up: without it stored secrets cannot be read."
        )
    return s


@contextmanager
def runtime(migrate: bool = True) -> Iterator[Runtime]:
    from caisse.runtime import Runtime

    s = settings()
    with database(s.database_url):
        if migrate:
            from caisse.storage.migrate import upgrade

            upgrade(s.database_url)
        rt = Runtime.build(s)
    try:
        yield rt
    finally:
        rt.close()


@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except CaisseError as exc:
        fail(exc.message)


@contextmanager
def database(url: str) -> Iterator[None]:
    """Reaching the database: a bad URL or a server down is one clean line naming the
    database, its password masked (the driver's own message may quote it, so it is scrubbed)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except CaisseError as exc:
        fail(exc.message)
    except (SQLAlchemyError, ValueError) as exc:  # SQLAlchemy's URL parser raises ValueError too
        fail(f"cannot use the database {redact_url(url)}: {_reason(exc, url)}")


def _reason(exc: BaseException, url: str) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    reason = lines[0] if lines else type(cause).__name__
    reason = reason.replace(url, redact_url(url))
    password = url_password(url)
    return reason.replace(password, MASKED) if password else reason


def fail(message: str, code: int = 1) -> Any:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
