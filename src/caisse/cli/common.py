"""What every command shares: settings, a runtime, clean error output (never a traceback)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from caisse.config import Settings
from caisse.errors import CaisseError
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
    s = settings()
    if migrate:
        from caisse.storage.migrate import upgrade

        with errors():
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


def fail(message: str, code: int = 1) -> Any:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
