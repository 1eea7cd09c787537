"""Running caisse: serve, worker, migrate, config, demo (``reconcile`` is in
``cli/reconcile.py``)."""

from __future__ import annotations

from typing import Annotated

import typer

from caisse.cli.common import console, database, out, print_json, runtime, settings


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port")] = 8000,
        workers: Annotated[int, typer.Option(help="HTTP worker processes")] = 1,
        no_worker: Annotated[
            bool, typer.Option("--no-worker", help="Run no in-process job worker")
        ] = False,
        no_render: Annotated[
            bool,
            typer.Option(
                "--no-render",
                help="The in-process worker leaves invoices, credit notes and their emails "
                "to a render lane (`caisse worker --render`)",
            ),
        ] = False,
    ) -> None:
        """Serve the API, the extranet and provider callbacks (with an in-process worker)."""
        import os

        import uvicorn

        from caisse.logging import configure
        from caisse.storage.migrate import upgrade

        s = settings()
        configure(s.log_level, json_format=s.log_json)
        with database(s.database_url):
            upgrade(s.database_url)
        if no_worker:
            os.environ["CAISSE_NO_WORKER"] = "1"
        if no_render:
            os.environ["CAISSE_NO_RENDER"] = "1"
        console.print(
            f"[bold green]caisse[/] serving on http://{host}:{port} "
            f"({'SQLite' if s.is_sqlite else 'PostgreSQL'})"
        )
        uvicorn.run(
            "caisse.web.asgi:app",
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
            # X-Forwarded-For is believed only from CAISSE_TRUSTED_PROXIES (uvicorn's
            # own default would trust 127.0.0.1).
            proxy_headers=bool(s.trusted_proxies),
            forwarded_allow_ips=",".join(s.trusted_proxies) or "",
        )

    @app.command()
    def worker(
        concurrency: Annotated[int, typer.Option(help="Jobs run at once")] = 32,
        kind: Annotated[
            list[str] | None,
            typer.Option(
                "--kind",
                help="Only claim jobs of this kind (repeat it): deliver, issue_invoice, "
                "issue_credit_note, send_invoice_email, extranet_invite_email, reconcile",
            ),
        ] = None,
        no_events: Annotated[
            bool, typer.Option("--no-events", help="Leave inbound provider events to others")
        ] = False,
        render: Annotated[
            bool,
            typer.Option(
                "--render",
                help="The render lane: only invoices, credit notes and their emails, no "
                "events (beside `caisse serve --no-render`); one job per quarter second while "
                "events or partner deliveries wait, full speed otherwise",
            ),
        ] = False,
        no_render: Annotated[
            bool,
            typer.Option(
                "--no-render",
                help="Every kind of work but the render lane's (beside `caisse worker --render`)",
            ),
        ] = False,
        nice: Annotated[
            int,
            typer.Option(
                "--nice",
                min=0,
                max=19,
                help="Lower this worker's CPU priority (as nice(1) does): a rendering lane "
                "beside `caisse serve` on one machine then never takes CPU from ingest and "
                "deliveries, and catches up when they are idle",
            ),
        ] = 0,
    ) -> None:
        """Run job workers only (scale-out: any number, on any machine, on PostgreSQL)."""
        import asyncio
        import os

        from caisse.jobs.registry import RENDER_KINDS
        from caisse.jobs.worker import Worker, run_loop
        from caisse.logging import configure

        if render and no_render:
            raise typer.BadParameter("--render and --no-render exclude each other")
        if render:
            kind, no_events = [*(kind or ()), *RENDER_KINDS], True
        if nice:
            os.nice(nice)

        with runtime() as rt:
            configure(rt.settings.log_level, json_format=rt.settings.log_json)
            console.print("[bold green]caisse worker[/] started; Ctrl-C to stop")

            async def main() -> None:
                stop = asyncio.Event()
                await Worker(
                    rt,
                    concurrency=concurrency,
                    kinds=tuple(kind) if kind else None,
                    skip_kinds=RENDER_KINDS if no_render else (),
                    events=not no_events,
                    yields=render,
                ).run(stop)

            try:
                run_loop(main())
            except KeyboardInterrupt:
                console.print("worker stopped")

    @app.command()
    def migrate() -> None:
        """Bring the database schema up to date."""
        from caisse.storage.migrate import upgrade

        s = settings()
        with database(s.database_url):
            upgrade(s.database_url)
        console.print("[green]Database schema is up to date.[/]")

    @app.command("config")
    def show_config(
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of a table")
        ] = False,
    ) -> None:
        """Show the configuration in effect (secrets hidden, passwords in URLs masked)."""
        view = settings().describe()
        if as_json:
            print_json(view)
            return
        from rich.markup import escape
        from rich.table import Table

        table = Table("setting", "value", title="caisse configuration", title_justify="left")
        for name, value in view.items():
            table.add_row(name, escape(value))
        out.print(table)

    @app.command()
    def demo(
        data_dir: Annotated[
            str | None, typer.Option(help="Data folder (default: a new one)")
        ] = None,
    ) -> None:
        """Run the end-to-end demo on a fresh SQLite data folder."""
        from caisse.demo import run_demo

        raise typer.Exit(run_demo(data_dir))
