"""``caisse endpoints …`` and ``caisse deliveries …``: the partner webhook API for operators,
with rich tables (``--json`` prints the API's JSON instead).

The delivery services (SQLAlchemy, aiohttp) are imported inside the commands, so that loading
the ``caisse`` command stays fast.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer

from caisse.cli.common import console, errors, out, print_json, runtime

if TYPE_CHECKING:
    from rich.table import Table

    from caisse.tenants.services import Caller

endpoints_app = typer.Typer(help="Partner endpoints (webhooks).", no_args_is_help=True)
deliveries_app = typer.Typer(help="Partner deliveries and their attempts.", no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant id")]
EnvOpt = Annotated[str, typer.Option("--env", help="test (staging) or live (production)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _caller(tenant: str, env: str) -> Caller:
    from caisse.tenants.services import Caller

    if env not in ("test", "live"):
        raise typer.BadParameter("--env must be test or live")
    return Caller(tenant, env)


def _when(ts: int | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _endpoint_table(views: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title="Partner endpoints")
    for col in ("id", "url", "status", "event types", "api key", "failing since"):
        table.add_column(col)
    for v in views:
        status = "[green]enabled[/]" if v["status"] == "enabled" else f"[red]{v['status']}[/]"
        if v["disabled_reason"]:
            status += f"\n[dim]{v['disabled_reason']}[/]"
        table.add_row(
            v["id"],
            v["url"],
            status,
            ", ".join(v["event_types"]) or "all",
            v["api_key"] or "—",
            _when(v["failing_since"]),
        )
    return table


@endpoints_app.command("list")
def endpoints_list(tenant: TenantOpt, env: EnvOpt = "test", as_json: JsonOpt = False) -> None:
    """List a tenant's endpoints of one environment."""
    from caisse.delivery import endpoints as svc

    caller = _caller(tenant, env)
    with runtime() as rt, errors(), rt.db.read() as s:
        rows = svc.list_endpoints(s, caller, newest_first=False)
        views = [svc.endpoint_view(r, rt.box, rt.clock.now()) for r in rows]
    print_json(views) if as_json else out.print(_endpoint_table(views))


@endpoints_app.command("create")
def endpoints_create(
    tenant: TenantOpt,
    url: str,
    env: EnvOpt = "test",
    api_key: Annotated[str | None, typer.Option(help="Sent as X-API-KEY (≥ 32 chars)")] = None,
    event_type: Annotated[
        list[str] | None, typer.Option("--event-type", help="Repeat; none = all")
    ] = None,
    description: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Register an endpoint; prints it as JSON with its signing secret (shown once)."""
    from caisse.delivery import endpoints as svc

    caller = _caller(tenant, env)
    with runtime() as rt, errors(), rt.db.write() as s:
        _, view = svc.create_endpoint(
            s,
            rt.box,
            caller,
            url=url,
            api_key=api_key,
            event_types=event_type,
            description=description,
            allow_private=rt.settings.allow_private_targets,
            now=rt.clock.now(),
        )
    print_json(view)


def _endpoint_panel(view: dict[str, Any]) -> Table:
    """One endpoint, field by field (secrets masked as the API shows them)."""
    from rich.table import Table

    table = Table(title=f"Endpoint {view['id']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    status = view["status"] + (f" ({view['disabled_reason']})" if view["disabled_reason"] else "")
    rows = [
        ("url", view["url"]),
        ("description", view["description"] or "—"),
        ("environment", "live (production)" if view["livemode"] else "test (staging)"),
        ("status", status),
        ("event types", ", ".join(view["event_types"]) or "all"),
        ("api key", view["api_key"] or "—"),
        ("secret", view["secret"] or "—"),
        ("old secrets sign until", ", ".join(map(_when, view["previous_secrets_expire"])) or "—"),
        ("failing since", _when(view["failing_since"])),
        ("created", _when(view["created"])),
        ("updated", _when(view["updated"])),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


@endpoints_app.command("show")
def endpoints_show(
    endpoint_id: str, tenant: TenantOpt, env: EnvOpt = "test", as_json: JsonOpt = False
) -> None:
    """One endpoint (secrets masked)."""
    from caisse.delivery import endpoints as svc

    caller = _caller(tenant, env)
    with runtime() as rt, errors(), rt.db.read() as s:
        view = svc.endpoint_view(svc.get_endpoint(s, caller, endpoint_id), rt.box, rt.clock.now())
    print_json(view) if as_json else out.print(_endpoint_panel(view))


@endpoints_app.command("update")
def endpoints_update(
    endpoint_id: str,
    tenant: TenantOpt,
    env: EnvOpt = "test",
    url: Annotated[str | None, typer.Option(help="New URL (queued retries go there too)")] = None,
    event_type: Annotated[
        list[str] | None, typer.Option("--event-type", help="Repeat; replaces the list")
    ] = None,
    all_event_types: Annotated[
        bool, typer.Option("--all-event-types", help="Subscribe to every type")
    ] = False,
    api_key_stdin: Annotated[
        bool, typer.Option("--api-key-stdin", help="Read a new X-API-KEY from stdin")
    ] = False,
    remove_api_key: Annotated[bool, typer.Option(help="Stop sending X-API-KEY")] = False,
    description: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Change an endpoint; only the options given change (the key never goes on the command
    line, where shell history and ``ps`` would see it)."""
    import sys

    from caisse.delivery import endpoints as svc

    caller = _caller(tenant, env)
    fields: set[str] = set()
    if url is not None:
        fields.add("url")
    if event_type or all_event_types:
        fields.add("event_types")
    if description is not None:
        fields.add("description")
    api_key = None
    if api_key_stdin and remove_api_key:
        raise typer.BadParameter("--api-key-stdin and --remove-api-key exclude each other")
    if api_key_stdin:
        api_key = sys.stdin.readline().strip()
        fields.add("api_key")
    elif remove_api_key:
        fields.add("api_key")
    if not fields:
        raise typer.BadParameter("nothing to change: give at least one option")
    changes = svc.EndpointChanges(
        fields=frozenset(fields),
        url=url,
        description=description,
        event_types=[] if all_event_types else event_type,
        api_key=api_key,
    )
    with runtime() as rt, errors(), rt.db.write() as s:
        view = svc.update_endpoint(
            s,
            rt.box,
            caller,
            endpoint_id,
            changes,
            allow_private=rt.settings.allow_private_targets,
            now=rt.clock.now(),
        )
    out.print(_endpoint_panel(view))


def _set_enabled(tenant: str, env: str, endpoint_id: str, enabled: bool) -> None:
    from caisse.delivery import endpoints as svc

    caller = _caller(tenant, env)
    with runtime() as rt, errors(), rt.db.write() as s:
        view = svc.update_endpoint(
            s,
            rt.box,
            caller,
            endpoint_id,
            svc.EndpointChanges(fields=frozenset({"enabled"}), enabled=enabled),
            allow_private=rt.settings.allow_private_targets,
            now=rt.clock.now(),
        )
    out.print(_endpoint_table([view]))


@endpoints_app.command("enable")
def endpoints_enable(endpoint_id: str, tenant: TenantOpt, env: EnvOpt = "test") -> None:
    """Enable an endpoint (clears its failure clock)."""
    _set_enabled(tenant, env, endpoint_id, True)


@endpoints_app.command("disable")
def endpoints_disable(endpoint_id: str, tenant: TenantOpt, env: EnvOpt = "test") -> None:
    """Disable an endpoint (its pending deliveries fail; replay them later)."""
    _set_enabled(tenant, env, endpoint_id, False)


@endpoints_app.command("delete")
def endpoints_delete(endpoint_id: str, tenant: TenantOpt, env: EnvOpt = "test") -> None:
    """Delete an endpoint and its delivery log."""
    from caisse.delivery import endpoints as svc

    caller = _caller(tenant, env)
    with runtime() as rt, errors(), rt.db.write() as s:
        print_json(svc.delete_endpoint(s, caller, endpoint_id))


@endpoints_app.command("rotate-secret")
def endpoints_rotate(
    endpoint_id: str,
    tenant: TenantOpt,
    env: EnvOpt = "test",
    grace_hours: Annotated[float, typer.Option(help="How long the old secret still signs")] = 24,
) -> None:
    """New signing secret (printed once); the old one signs too during the grace period."""
    from caisse.delivery import endpoints as svc

    caller = _caller(tenant, env)
    with runtime() as rt, errors(), rt.db.write() as s:
        view = svc.rotate_secret(
            s,
            rt.box,
            caller,
            endpoint_id,
            grace=dt.timedelta(hours=grace_hours),
            now=rt.clock.now(),
        )
    print_json(view)


@endpoints_app.command("test")
def endpoints_test(endpoint_id: str, tenant: TenantOpt, env: EnvOpt = "test") -> None:
    """Send a signed test message; a verdict on stderr, the result as JSON on stdout."""
    import asyncio

    from caisse.delivery.worker import close_clients, send_test

    caller = _caller(tenant, env)

    async def run(rt: Any) -> dict[str, Any]:
        try:
            return await send_test(rt, caller, endpoint_id)
        finally:
            await close_clients()

    with runtime() as rt, errors():
        result = asyncio.run(run(rt))
    if result["ok"]:
        console.print(
            f"[green]delivered[/] HTTP {result['status_code']} in {result['duration_ms']} ms"
        )
    else:
        what = result["error_kind"] or f"HTTP {result['status_code']}"
        console.print(f"[red]failed[/] {what} after {result['duration_ms']} ms")
    print_json(result)


def _delivery_table(title: str, views: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for col in ("delivery", "message", "type", "status", "attempts", "last", "next attempt"):
        table.add_column(col)
    colours = {"delivered": "green", "pending": "yellow", "failed": "red"}
    for v in views:
        colour = colours.get(v["status"], "white")
        table.add_row(
            v["id"],
            v["message_id"],
            v["event_type"],
            f"[{colour}]{v['status']}[/]",
            str(v["attempt_count"]),
            v["last_error"] or (str(v["last_status_code"]) if v["last_status_code"] else "—"),
            _when(v["next_attempt"]),
        )
    return table


@deliveries_app.command("list")
def deliveries_list(
    endpoint_id: str,
    tenant: TenantOpt,
    env: EnvOpt = "test",
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """An endpoint's deliveries, newest first (``--json`` includes every attempt)."""
    from sqlalchemy import select

    from caisse.delivery import endpoints as svc
    from caisse.delivery import outbox
    from caisse.storage import models as m

    caller = _caller(tenant, env)
    with runtime() as rt, errors(), rt.db.read() as s:
        endpoint = svc.get_endpoint(s, caller, endpoint_id)
        stmt = select(m.Delivery).where(m.Delivery.endpoint_id == endpoint.id)
        if status:
            stmt = stmt.where(m.Delivery.status == status)
        rows = s.scalars(stmt.order_by(m.Delivery.id.desc()).limit(limit)).all()
        attempts = outbox.attempts_for(s, [r.id for r in rows]) if as_json else {}
        views = [outbox.delivery_view(r, attempts.get(r.id) if as_json else None) for r in rows]
    if as_json:
        print_json(views)
    else:
        out.print(_delivery_table(f"Deliveries to {endpoint_id}", views))


@deliveries_app.command("show")
def deliveries_show(delivery_id: str, tenant: TenantOpt, env: EnvOpt = "test") -> None:
    """One delivery and every attempt."""
    from rich.table import Table
    from sqlalchemy import select

    from caisse.delivery import outbox
    from caisse.storage import models as m

    caller = _caller(tenant, env)
    with runtime() as rt, errors(), rt.db.read() as s:
        row = s.scalars(
            select(m.Delivery).where(
                m.Delivery.id == delivery_id,
                m.Delivery.tenant_id == caller.tenant_id,
                m.Delivery.environment == caller.environment,
            )
        ).one_or_none()
        if row is None:
            console.print(f"[red]No such delivery: {delivery_id}[/]")
            raise typer.Exit(1)
        view = outbox.delivery_view(row, outbox.attempts_for(s, [row.id])[row.id])
    table = Table(title=f"Attempts of {delivery_id} ({view['status']})")
    for col in ("#", "when", "outcome", "status", "ms", "error", "next"):
        table.add_column(col)
    for a in view["attempts"]:
        table.add_row(
            str(a["number"]),
            _when(a["attempted"]),
            a["outcome"],
            str(a["status_code"] or "—"),
            str(a["duration_ms"]),
            a["error"] or "",
            _when(a["next_attempt"]),
        )
    out.print(table)


@deliveries_app.command("retry")
def deliveries_retry(delivery_id: str, tenant: TenantOpt, env: EnvOpt = "test") -> None:
    """Try a delivery again now."""
    from caisse.delivery import outbox

    caller = _caller(tenant, env)
    with runtime() as rt, errors(), rt.db.write() as s:
        view = outbox.delivery_view(
            outbox.retry_delivery(s, caller, delivery_id, now=rt.clock.now())
        )
    out.print(_delivery_table("Queued again", [view]))


@deliveries_app.command("replay")
def deliveries_replay(
    endpoint_id: str,
    tenant: TenantOpt,
    since: Annotated[str, typer.Option(help="ISO date/time, e.g. 2026-01-31T00:00Z")],
    env: EnvOpt = "test",
) -> None:
    """Queue again an endpoint's failed deliveries (and missed messages) since a time."""
    from caisse.delivery import outbox

    caller = _caller(tenant, env)
    when = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    with runtime() as rt, errors(), rt.db.write() as s:
        print_json(outbox.replay(s, caller, endpoint_id, since=when, now=rt.clock.now()))


@deliveries_app.command("undelivered")
def deliveries_undelivered(tenant: TenantOpt, env: EnvOpt = "test", limit: int = 50) -> None:
    """Deliveries not (yet) delivered, across the tenant's endpoints of one environment."""
    from sqlalchemy import exists, select

    from caisse.delivery import outbox
    from caisse.storage import models as m

    caller = _caller(tenant, env)
    with runtime() as rt, errors(), rt.db.read() as s:
        rows = s.scalars(
            select(m.Delivery)
            .where(
                m.Delivery.tenant_id == caller.tenant_id,
                m.Delivery.environment == caller.environment,
                m.Delivery.status != "delivered",
                exists().where(m.Endpoint.id == m.Delivery.endpoint_id),
            )
            .order_by(m.Delivery.id.desc())
            .limit(limit)
        ).all()
        views = [outbox.delivery_view(r) for r in rows]
    out.print(_delivery_table("Undelivered", views))
