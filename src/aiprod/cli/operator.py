"""Operator commands for running the platform: `aiprod worker` and
`aiprod db upgrade|downgrade`."""

from __future__ import annotations

from typing import Annotated

import typer

from aiprod.cli.common import console, fail, migrate, platform_settings, safe_url
from aiprod.settings import Settings

db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add `worker` and the `db` group to `app`."""
    app.command()(worker)
    app.add_typer(db_app, name="db")


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Jobs at once (default: AIPROD_WORKERS, at least 1)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Run a standalone job worker until SIGTERM or SIGINT (migrates the database first).

    Jobs in flight when it stops are released and resume from their last
    finished stage on the next worker that claims them.
    """
    import asyncio

    configure_logging(log_level)
    settings = platform_settings()
    migrate("up", settings.sqlalchemy_url, "heads")
    asyncio.run(run_worker(settings, concurrency))


def configure_logging(log_level: str) -> None:
    """The worker's log lines, at `log_level` (a bad name is a CLI error), in
    AIPROD_LOG_FORMAT (aiprod.ops.logs: JSON lines, or for people at a terminal)."""
    from aiprod.ops import logs

    try:
        logs.configure(platform_settings().log_format, log_level)
    except ValueError:
        raise fail(f"unknown log level {log_level!r}") from None


async def run_worker(settings: Settings, concurrency: int | None) -> None:
    """Claim and run jobs until SIGTERM or SIGINT."""
    import asyncio
    import logging
    import signal

    from aiprod.db.engine import Database
    from aiprod.jobs.worker import Worker
    from aiprod.storage.store import Storage

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal(sig: signal.Signals) -> None:
        logging.getLogger("aiprod.worker").info("%s received; stopping", sig.name)
        stop.set()
        for s in signals:  # a second signal ends the process at once
            loop.remove_signal_handler(s)

    for s in signals:
        try:
            loop.add_signal_handler(s, on_signal, s)
        except NotImplementedError:  # pragma: no cover (Windows)
            signal.signal(s, lambda *_: loop.call_soon_threadsafe(stop.set))
    from aiprod.events.bus import worker_publisher
    from aiprod.events.webhooks.delivery import WebhookOutbox

    db = Database(settings.sqlalchemy_url)
    try:
        # Events reach API processes through Redis when configured, else
        # through the database (NOTIFY on PostgreSQL, polling on SQLite).
        async with worker_publisher(settings, WebhookOutbox()) as on_event:
            storage = Storage(settings.artifact_url)
            await Worker(db, storage, settings, concurrency, on_event).run(stop)
    finally:
        await db.dispose()


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "heads",
) -> None:
    """Migrate the database (AIPROD_DATABASE_URL) up to REVISION."""
    settings = platform_settings()
    migrate("up", settings.sqlalchemy_url, revision)
    console.print(f"[green]upgraded[/] {safe_url(settings.sqlalchemy_url)} to {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision: -1 (one step), an id, or base (drops all).")
    ] = "-1",
) -> None:
    """Migrate the database down to REVISION (one step by default)."""
    settings = platform_settings()
    migrate("down", settings.sqlalchemy_url, revision)
    console.print(f"[green]downgraded[/] {safe_url(settings.sqlalchemy_url)} to {revision}")
