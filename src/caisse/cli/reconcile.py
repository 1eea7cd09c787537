"""``caisse reconcile``: repair orders whose provider events never arrived, and show per tenant
what was checked, repaired and what failed."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from caisse.cli.common import console, errors, out, runtime

_PARAGRAPHS = (
    """Repair orders whose provider events never arrived (Stripe and Xsolla).""",
    """Stripe: missed events are listed from the Events API since each tenant's cursor and
    applied once; orders still open, processing or requiring action after the grace period,
    and at most 30 days old, get their PaymentIntent read and applied. Disconnected accounts
    are skipped.""",
    """Xsolla (tenants whose Xsolla settings include merchant_id): orders still unpaid after the
    grace period, and at most 7 days old, are looked up in Xsolla's transaction reports by their
    order id; transactions refunded or cancelled in the last 30 days refund the orders they
    paid.""",
    """Everything goes through the webhooks' own path, so a webhook arriving later applies
    nothing twice. A provider error (refused key, rate limit, outage, timeout) is reported on
    its tenant's row and the other tenants carry on; the command exits 0 when done.""",
)
HELP = "\n\n".join(" ".join(p.split()) for p in _PARAGRAPHS)


def register(app: typer.Typer) -> None:
    @app.command(help=HELP)
    def reconcile(
        tenant: Annotated[str | None, typer.Option(help="Only this tenant (its id)")] = None,
        grace_minutes: Annotated[
            int, typer.Option(min=0, help="Leave orders younger than this alone")
        ] = 10,
        provider: Annotated[
            str | None, typer.Option(help="Only this provider: stripe or xsolla")
        ] = None,
    ) -> None:
        from rich.progress import Progress
        from rich.table import Table

        from caisse.reconcile import reconcile as run

        if provider not in (None, "stripe", "xsolla"):
            raise typer.BadParameter("stripe or xsolla", param_hint="--provider")
        with runtime() as rt, errors(), Progress(console=console, transient=True) as bar:
            task = bar.add_task("Checking orders", total=None)
            report = run(
                rt,
                tenant_id=tenant,
                grace=dt.timedelta(minutes=grace_minutes),
                progress=lambda _: bar.advance(task),
                stripe=provider in (None, "stripe"),
                xsolla=provider in (None, "xsolla"),
            )
        table = Table(title="caisse reconcile", title_justify="left")
        for name, justify in (
            ("tenant", "left"),
            ("env", "left"),
            ("provider", "left"),
            ("checked", "right"),
            ("repaired", "right"),
            ("events added", "right"),
            ("errors", "right"),
            ("note", "left"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in report.tenants():
            table.add_row(
                row.tenant_id,
                row.environment,
                row.provider,
                str(row.checked),
                f"[green]{row.repaired}[/]" if row.repaired else "0",
                str(row.events_added) if row.provider == "stripe" else "-",
                f"[red]{len(row.errors)}[/]" if row.errors else "0",
                row.skipped or "",
            )
        if report.rows:
            out.print(table)
        out.print(
            f"checked [bold]{report.checked}[/] orders, repaired "
            f"[bold green]{report.repaired}[/], errors [bold red]{len(report.errors)}[/]"
        )
        for err in report.errors:
            console.print(f"  [red]•[/] {err}")
