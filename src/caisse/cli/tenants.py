"""``caisse tenant create`` and ``caisse user create`` (services imported when run)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from caisse.cli.common import console, errors, print_json, runtime

tenant_app = typer.Typer(help="Tenants (merchants).", no_args_is_help=True)
user_app = typer.Typer(help="Extranet users.", no_args_is_help=True)


@tenant_app.command("create")
def tenant_create(name: str) -> None:
    """Create a tenant; prints its id and API keys (shown once) as JSON."""
    from caisse.tenants import services

    with runtime() as rt, errors(), rt.db.write() as s:
        tenant, keys = services.create_tenant(s, rt.clock, name)
        view = services.tenant_view(tenant)
    print_json({**view, "api_keys": keys})


@user_app.command("create")
def user_create(
    tenant_id: str,
    email: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin")
    ] = False,
) -> None:
    """Create an extranet user for a tenant."""
    from caisse.tenants import users

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with runtime() as rt, errors(), rt.db.write() as s:
        user = users.create_user(s, rt.clock, tenant_id, email, password)
        result = {"id": user.id, "tenant_id": user.tenant_id, "email": user.email}
    print_json(result)
    console.print(f"[green]User {result['email']} created.[/]")
