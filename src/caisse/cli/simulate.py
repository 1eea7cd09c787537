"""``caisse simulate stripe EVENT_TYPE``: send a realistic, correctly signed Stripe event to a
caisse, as ``stripe trigger`` does, so merchants can test their set-up end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from caisse.cli.common import console, fail, out, runtime
from caisse.config import redact_url

if TYPE_CHECKING:
    import httpx

simulate_app = typer.Typer(help="Send realistic, signed provider events.", no_args_is_help=True)


def _target(
    tenant: str, live: bool, order_id: str | None, url: str | None, secret: str | None
) -> tuple[str, list[str], dict[str, Any]]:
    """The URL, signing secrets and order facts, from the local database unless given."""
    from sqlalchemy import select

    from caisse.providers.stripe.mapping import ORDER_METADATA_KEY, TENANT_METADATA_KEY
    from caisse.storage import models as m
    from caisse.tenants.credentials import webhook_url

    env = "live" if live else "test"
    facts: dict[str, Any] = {}
    with runtime() as rt, rt.db.read() as s:
        target = url or webhook_url(rt.settings.public_url, "stripe", tenant)
        if url and urlsplit(url).path in ("", "/"):  # a caisse base URL: add the callback path
            target = webhook_url(url.rstrip("/"), "stripe", tenant)
        secrets = [secret] if secret else []
        if not secrets:
            row = s.execute(
                select(m.ProviderAccount).where(
                    m.ProviderAccount.tenant_id == tenant,
                    m.ProviderAccount.environment == env,
                    m.ProviderAccount.provider == "stripe",
                )
            ).scalar_one_or_none()
            if row is None:
                fail(f"No Stripe credentials for tenant {tenant} ({env}); pass --secret")
            assert row is not None
            secrets = [rt.box.decrypt(x) for x in row.secrets.get("webhook_secrets", [])]
        if order_id:
            order = s.get(m.Order, order_id)
            if order is None or order.tenant_id != tenant:
                fail(f"No order {order_id} for tenant {tenant}")
            assert order is not None
            facts = {
                "payment_intent_id": order.provider_payment_id,
                "amount": order.amount_total,
                "currency": order.currency,
                "metadata": {ORDER_METADATA_KEY: order.id, TENANT_METADATA_KEY: tenant},
            }
    return target, secrets, facts


def send(target: str, secrets: list[str], event: dict[str, Any]) -> httpx.Response:
    import httpx

    from caisse.providers.stripe import simulate

    body, headers = simulate.signed_delivery(event, secrets)
    return httpx.post(target, content=body, headers=headers, timeout=15)


@simulate_app.command("stripe")
def simulate_stripe(
    event_type: Annotated[
        str, typer.Argument(help="A Stripe event type (see --list), or a scenario with --scenario")
    ] = "",
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant id")] = "",
    order: Annotated[str | None, typer.Option(help="Make the event about this order")] = None,
    live: Annotated[bool, typer.Option("--live", help="A live-mode event")] = False,
    scenario: Annotated[str | None, typer.Option(help="Send a whole flow instead")] = None,
    url: Annotated[
        str | None,
        typer.Option(help="caisse's base URL or the full callback URL (default: from settings)"),
    ] = None,
    secret: Annotated[
        str | None, typer.Option(help="whsec_ secret (default: the tenant's)")
    ] = None,
    amount: Annotated[int, typer.Option(help="Amount in minor units")] = 2000,
    currency: Annotated[str, typer.Option()] = "eur",
    list_types: Annotated[
        bool, typer.Option("--list", help="List event types and scenarios")
    ] = False,
) -> None:
    """Send one signed Stripe event (or a scenario's events) to caisse."""
    from rich.table import Table

    from caisse.providers.stripe import simulate
    from caisse.providers.stripe.catalog import SUBSCRIBED_EVENT_TYPES

    if list_types:
        table = Table("event type", title="Stripe event types caisse handles")
        for t in SUBSCRIBED_EVENT_TYPES:
            table.add_row(t)
        out.print(table)
        out.print("Scenarios: " + ", ".join(simulate.SCENARIOS))
        return
    if not tenant:
        fail("--tenant is required")
    if scenario is None and event_type not in SUBSCRIBED_EVENT_TYPES:
        fail(f"Unknown event type {event_type!r}; see --list")
    if scenario is not None and scenario not in simulate.SCENARIOS:
        fail(f"Unknown scenario {scenario!r}; see --list")
    import httpx

    target, secrets, facts = _target(tenant, live, order, url, secret)
    params: dict[str, Any] = {"amount": amount, "currency": currency, **facts}
    if scenario is not None:
        events = simulate.scenario(scenario, livemode=live, **params)
    else:
        events = [simulate.build_event(event_type, livemode=live, **params)]
    failed = 0
    for event in events:
        try:
            response = send(target, secrets, event)
        except httpx.HTTPError as exc:
            fail(f"Could not reach {redact_url(target)}: {exc.__class__.__name__}")
            return
        ok = response.status_code == 200
        failed += 0 if ok else 1
        colour = "green" if ok else "red"
        console.print(f"[{colour}]{response.status_code}[/] {event['type']:<45} {event['id']}")
    if failed:
        raise typer.Exit(1)
