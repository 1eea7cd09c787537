"""The ``caisse`` command: serve, worker, migrate, tenants, users, simulate, reconcile, demo.

Settings are built lazily, inside each command, so ``caisse --help`` needs no configuration.
"""

from __future__ import annotations

import typer

from caisse.cli import delivery as delivery
from caisse.cli import ops as ops
from caisse.cli import reconcile as reconcile
from caisse.cli import simulate as simulate
from caisse.cli import tenants as tenants

app = typer.Typer(
    name="caisse",
    help="caisse: a self-hosted payment events hub for Stripe and Xsolla.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ops.register(app)
reconcile.register(app)
app.add_typer(tenants.tenant_app, name="tenant")
app.add_typer(tenants.user_app, name="user")
app.add_typer(simulate.simulate_app, name="simulate")
app.add_typer(delivery.endpoints_app, name="endpoints")
app.add_typer(delivery.deliveries_app, name="deliveries")


def main() -> None:
    app()
