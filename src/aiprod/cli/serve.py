"""Operator command `aiprod serve`: the HTTP API, with an embedded worker.

FastAPI, uvicorn and the API package are imported inside the command, so the
rest of the command line does not load them."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from aiprod.cli.common import console, fail, migrate, platform_settings
from aiprod.cli.processes import Supervisor, processes_for
from aiprod.settings import Settings


def register(app: typer.Typer) -> None:
    """Add `serve` to `app`."""
    app.command()(serve)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: AIPROD_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: AIPROD_PORT).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=32,
            help="Embedded worker slots; 0 serves the API only and leaves jobs to "
            "`aiprod worker` processes (default: AIPROD_WORKERS).",
        ),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=64,
            help="API processes on the port; 0: one per core (default: AIPROD_PROCESSES).",
        ),
    ] = None,
    admin_email: Annotated[
        str, typer.Option(help="Email of the first admin, created when there is no admin.")
    ] = "admin@localhost",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the HTTP API: migrate the database, make sure an admin exists, then serve
    (with an embedded worker unless --workers 0)."""
    import asyncio

    import uvicorn

    from aiprod.api.app import create_app

    if log_level.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
        raise fail(f"unknown log level {log_level!r}")
    settings = platform_settings()
    overrides = {"host": host, "port": port, "workers": workers, "processes": processes}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    migrate("up", settings.sqlalchemy_url, "heads")
    # Also proves the signing key is usable before anything listens.
    password = asyncio.run(_ensure_admin(settings, admin_email))
    if password is not None:
        console.print(f"[bold green]created the first admin:[/] {admin_email.strip().lower()}")
        console.print(f"[bold]one-time password:[/] {password}", highlight=False)
        console.print("[yellow]it is shown only now; store it safely.[/]")
    base = f"http://{_browser_host(settings.host)}:{settings.port}"
    count = processes_for(settings)
    if settings.workers == 0:
        worker_mode = "no worker (run `aiprod worker`)"
    elif count > 1:
        worker_mode = f"a worker process x{settings.workers}"
    else:
        worker_mode = f"embedded worker x{settings.workers}"
    mode = f"{count} API process{'es' if count > 1 else ''}, {worker_mode}"
    console.print(f"[bold]AIPROD[/] on {base} ({mode})")
    console.print(
        f"[bold]Studio:[/] open {base}/ in a browser and sign in as "
        f"{admin_email.strip().lower()} with the one-time password",
        highlight=False,
    )
    console.print(f"API docs: {base}/docs and {base}/redoc")
    console.print("Try it:", highlight=False)
    example = (
        f"TOKEN=$(curl -s -X POST {base}/v1/auth/login -H 'Content-Type: application/json' \\\n"
        f'  -d \'{{"email": "{admin_email.strip().lower()}", "password": "PASSWORD"}}\' \\\n'
        "  | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n"
        f'curl -s -X POST {base}/v1/productions -H "Authorization: Bearer $TOKEN" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        '  -d \'{"prompt": "How honeybees turn nectar into honey", "duration": 20}\''
    )
    console.print(example, markup=False, highlight=False, soft_wrap=True)
    if count > 1:
        from aiprod.ops import logs

        console.print(f"supervisor pid {os.getpid()}: SIGHUP reloads, SIGTERM stops")
        logs.configure(settings.log_format, "info")
        shared = settings.model_copy(update={"rate_limit_processes": count})
        raise typer.Exit(Supervisor(shared, count, log_level.lower()).run())

    from aiprod.events.runtime import drain_streams_on_exit

    api = create_app(settings)
    server = uvicorn.Server(server_config(api, settings, log_level))
    drain_streams_on_exit(server, api)  # open event streams must not hold shutdown
    tune_gc()
    server.run()


def server_config(app: Any, settings: Settings, log_level: str) -> Any:
    """uvicorn's configuration of an API process, whose log lines (uvicorn's
    included) it sends to stderr in AIPROD_LOG_FORMAT (aiprod.ops.logs); the
    app writes the access log, uvicorn's is off."""
    import uvicorn

    from aiprod.ops import logs

    logs.configure(settings.log_format, log_level)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        log_config=None,
        access_log=False,
        server_header=False,
        # X-Forwarded-* is handled by the app, from settings.trusted_proxies only.
        proxy_headers=False,
        # Event messages are small JSON; compressing each one per
        # connection costs more CPU at fan-out than it saves bytes.
        ws_per_message_deflate=False,
    )


def tune_gc() -> None:
    """Keep the cyclic GC from stalling live event streams.  With a thousand
    open WebSockets a default full collection walks ~200k objects and pauses
    the loop ~100 ms, delaying the next event for every client at once
    (bench/events.py).  Everything imported so far lives as long as the
    process, so it leaves the collector's view; collections then run less
    often and each one is small."""
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 50, 50)


async def _ensure_admin(settings: Settings, email: str) -> str | None:
    """The first admin's one-time password, or None when an admin exists."""
    from aiprod.db.engine import Database
    from aiprod.identity.service import IdentityService
    from aiprod.identity.tokens import InsecureConfiguration
    from aiprod.identity.users import UserExists

    db = Database(settings.sqlalchemy_url)
    try:
        return await IdentityService(db, settings).ensure_admin(email.strip().lower())
    except InsecureConfiguration as exc:
        raise fail(str(exc), 1) from None
    except UserExists:
        return None  # another server made it at the same moment
    except ValueError as exc:
        raise fail(f"cannot create the admin: {exc}") from None
    finally:
        await db.dispose()


def _browser_host(host: str) -> str:
    """Where a local browser reaches a server bound to `host`."""
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 (mapping, not binding)
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
