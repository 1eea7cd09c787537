"""``caisse simulate stripe EVENT_TYPE``: send a realistic, correctly signed Stripe event to a
caisse, as ``stripe trigger`` does, so merchants can test their set-up end to end. Test mode
only, as ``stripe trigger``; for a connected account the event names it (``account``)."""

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
    tenant: str, order_id: str | None, url: str | None, secret: str | None
) -> tuple[str, list[str], dict[str, Any]]:
    """The URL, signing secrets and event facts (order, connected account), from the local
    database unless given. A tenant connected through OAuth whose own signing secrets are
    unset takes its events as Stripe sends them: on the platform's Connect endpoint, signed
    with the platform's Connect secret."""
    from sqlalchemy import select

    from caisse.intake.stripe import CONNECT_ROUTE
    from caisse.providers.stripe.mapping import ORDER_METADATA_KEY, TENANT_METADATA_KEY
    from caisse.storage import models as m
    from caisse.tenants.credentials import connected_by_oauth, webhook_url

    facts: dict[str, Any] = {}
    route = tenant
    with runtime() as rt, rt.db.read() as s:
        row = s.execute(
            select(m.ProviderAccount).where(
                m.ProviderAccount.tenant_id == tenant,
                m.ProviderAccount.environment == "test",
                m.ProviderAccount.provider == "stripe",
            )
        ).scalar_one_or_none()
        secrets = [secret] if secret else []
        if row is not None:
            if connected_by_oauth(row):  # a Connect event names the connected account
                facts["account"] = row.provider_account_id
            own = [rt.box.decrypt(x) for x in row.secrets.get("webhook_secrets", [])]
            if not secrets and not own and connected_by_oauth(row):
                route = CONNECT_ROUTE
                secrets = [x.reveal() for x in rt.settings.stripe_connect_webhook_secrets]
                if not secrets:
                    fail(
                        f"Tenant {tenant} is connected through Stripe Connect, and no Connect "
                        "signing secret is set (CAISSE_STRIPE_CONNECT_WEBHOOK_SECRET); "
                        "pass --secret"
                    )
            secrets = secrets or own
        if not secrets:
            fail(f"No Stripe credentials for tenant {tenant} (test); pass --secret")
        base = rt.settings.public_url
        target = url or webhook_url(base, "stripe", route)
        if url and urlsplit(url).path in ("", "/"):  # a caisse base URL: add the callback path
            target = webhook_url(url.rstrip("/"), "stripe", route)
        if order_id:
            order = s.get(m.Order, order_id)
            if order is None or order.tenant_id != tenant or order.environment != "test":
                fail(f"No test order {order_id} for tenant {tenant}")
            assert order is not None
            facts.update(
                {
                    "payment_intent_id": order.provider_payment_id,
                    "amount": order.amount_total,
                    "currency": order.currency,
                    "metadata": {ORDER_METADATA_KEY: order.id, TENANT_METADATA_KEY: tenant},
                }
            )
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
    live: Annotated[
        bool, typer.Option("--live", help="Refused: simulated events are test mode only")
    ] = False,
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
    if live:
        # As ``stripe trigger``: a made-up event must never pay or refund a live order.
        fail("Simulated events are test mode only (as stripe trigger); drop --live")
    if not tenant:
        fail("--tenant is required")
    if scenario is None and event_type not in SUBSCRIBED_EVENT_TYPES:
        fail(f"Unknown event type {event_type!r}; see --list")
    if scenario is not None and scenario not in simulate.SCENARIOS:
        fail(f"Unknown scenario {scenario!r}; see --list")
    import httpx

    target, secrets, facts = _target(tenant, order, url, secret)
    params: dict[str, Any] = {"amount": amount, "currency": currency, **facts}
    if scenario is not None:
        events = simulate.scenario(scenario, livemode=False, **params)
    else:
        events = [simulate.build_event(event_type, livemode=False, **params)]
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
