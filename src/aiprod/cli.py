"""Command line: `aiprod make`, `aiprod voices`, `aiprod presets`, and the operator
commands `aiprod worker`, `aiprod db upgrade|downgrade`, `aiprod users create`,
`aiprod audit verify`, `aiprod keys rotate-due`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from aiprod.production.models import STAGES, ProductionRequest
from aiprod.settings import Settings

app = typer.Typer(
    help="AIPROD: prompt or script in, finished narrated video out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _validation_message(exc: ValidationError) -> str:
    lines = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "request"
        lines.append(f"  {where}: {e['msg']}")
    return "invalid request:\n" + "\n".join(lines)


def _parse_media(values: list[str]) -> list[dict[str, Any]]:
    media = []
    for v in values:
        scene, sep, path = v.partition("=")
        if not sep or not scene.strip().isdigit():
            raise _fail(f"--media takes SCENE=PATH (e.g. 1=photo.jpg), got {v!r}")
        p = Path(path).expanduser()
        if not p.is_file():
            raise _fail(f"media file not found: {p}")
        media.append({"scene": int(scene), "path": p.resolve()})
    return media


@app.command()
def make(
    prompt: Annotated[str | None, typer.Argument(help="What the video is about.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path("out"),
    script: Annotated[
        Path | None, typer.Option("--script", help="A script file instead of a prompt.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Title for the title card.")] = None,
    duration: Annotated[float | None, typer.Option(help="Target seconds (5–300).")] = None,
    aspect: Annotated[str, typer.Option(help="16:9, 9:16 or 1:1.")] = "16:9",
    resolution: Annotated[str, typer.Option(help="480p, 720p or 1080p.")] = "720p",
    fps: Annotated[int, typer.Option(help="24, 25 or 30.")] = 30,
    language: Annotated[str, typer.Option(help="Narration language.")] = "en",
    voice: Annotated[str | None, typer.Option(help="Voice name (see `aiprod voices`).")] = None,
    rate: Annotated[int, typer.Option(help="Speaking rate, words per minute.")] = 165,
    pitch: Annotated[int, typer.Option(help="Voice pitch 0–99.")] = 50,
    music: Annotated[str, typer.Option(help="Music mood, or 'none'.")] = "uplifting",
    palette: Annotated[str, typer.Option(help="Palette name or #hex,#hex,...")] = "ocean",
    motif: Annotated[
        str, typer.Option(help="gradient, particles, geometric, waves.")
    ] = "particles",
    subtitles: Annotated[bool, typer.Option(help="Burn in subtitles + sidecars.")] = True,
    preset: Annotated[str, typer.Option(help="See `aiprod presets`.")] = "brand_campaign",
    budget: Annotated[float | None, typer.Option(help="Spending cap in USD.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the planner and renderers.")] = 0,
    media: Annotated[
        list[str] | None, typer.Option("--media", help="SCENE=PATH, repeatable.")
    ] = None,
    estimate_only: Annotated[
        bool, typer.Option("--estimate", help="Print the cost estimate and stop.")
    ] = False,
) -> None:
    """Make a narrated video from a prompt or a script."""
    from aiprod.production.cost import BudgetExceeded

    if script is not None:
        if prompt is not None:
            raise _fail("give a prompt or --script, not both")
        try:
            script_text: str | None = script.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read script {script}: {exc}") from None
    else:
        script_text = None
        if prompt is None:
            raise _fail('give a prompt, e.g. aiprod make "how bees make honey", or --script FILE')
    raw: dict[str, Any] = {
        "prompt": prompt,
        "script": script_text,
        "title": title,
        "duration": duration,
        "aspect": aspect,
        "resolution": resolution,
        "fps": fps,
        "language": language,
        "voice": {"name": voice or language, "rate": rate, "pitch": pitch},
        "music": None if music.lower() == "none" else music,
        "style": {
            "palette": palette.split(",") if palette.startswith("#") else palette,
            "motif": motif,
        },
        "subtitles": {"enabled": subtitles},
        "preset": preset,
        "budget": budget,
        "seed": seed,
        "media": _parse_media(media or []),
    }
    try:
        request = ProductionRequest.model_validate(raw)
    except ValidationError as exc:
        raise _fail(_validation_message(exc)) from None

    from aiprod.production.pipeline import Cancelled, Pipeline, QAFailed

    try:
        pipeline = Pipeline(request, output)
    except BudgetExceeded as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    est = pipeline.estimate
    if estimate_only:
        _print_estimate(est.model_dump(mode="json"), pipeline.fast_track)
        return
    for note in est.downgrades:
        console.print(f"[yellow]budget:[/] downgraded {note}")
    if pipeline.fast_track:
        console.print("[cyan]fast track:[/] simple request, draft encode, no review")

    with Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TextColumn("[dim]ETA {task.fields[eta]}"),
        console=console,
    ) as bar:
        tasks: dict[str, TaskID] = {s: bar.add_task(s, total=1.0, note="", eta="–") for s in STAGES}

        def on_progress(ev: Any) -> None:
            eta = f"{ev.eta:.0f}s" if ev.eta is not None else "–"
            note = f"{ev.cached}/{ev.units} cached" if ev.status == "completed" and ev.units else ""
            for t in tasks.values():
                bar.update(t, eta=eta)
            bar.update(tasks[ev.stage], completed=ev.fraction, note=note)

        pipeline.on_progress = on_progress
        try:
            result = pipeline.run()
            assert result is not None  # no review gate on the command line
        except QAFailed as exc:
            bar.stop()
            _print_qa(exc.report.model_dump(mode="json"))
            raise _fail(f"{exc} (report: {output / 'qa.json'})", 1) from None
        except Cancelled:
            raise _fail("cancelled", 130) from None
        except ValueError as exc:
            raise _fail(str(exc)) from None
    console.print(
        f"[bold green]done:[/] {result.video}  ({result.storyboard.duration:.1f}s, "
        f"{len(result.storyboard.scenes)} scenes, {pipeline.spec.width}x"
        f"{pipeline.spec.height}@{pipeline.spec.fps})"
    )
    console.print(f"       subtitles, poster, storyboard, qa, cost, manifest in {output}/")


def _print_estimate(est: dict[str, Any], fast: bool) -> None:
    table = Table(title="Cost estimate")
    for col in ("stage", "backend", "units", "unit", "cost (USD)", "seconds"):
        table.add_column(col)
    for s in est["stages"]:
        table.add_row(
            s["stage"],
            s["backend"],
            f"{s['units']:.3f}",
            s["unit"],
            f"{s['cost']:.6f}",
            f"{s['seconds']:.1f}",
        )
    console.print(table)
    console.print(f"total ${est['total']:.6f}, about {est['seconds']:.0f}s; fast track: {fast}")
    for note in est.get("downgrades", []):
        console.print(f"[yellow]downgraded:[/] {note}")


def _print_qa(report: dict[str, Any]) -> None:
    table = Table(title="Quality checks")
    for col in ("check", "result", "measured", "expected"):
        table.add_column(col)
    for c in report["checks"]:
        mark = "[green]pass" if c["passed"] else ("[red]FAIL" if c["blocking"] else "[yellow]warn")
        table.add_row(c["name"], mark, c["measured"], c["expected"])
    err.print(table)


@app.command()
def voices(
    language: Annotated[str | None, typer.Option(help="Only voices for this language.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the narrator voices."""
    from aiprod.production import backends

    items = backends.get("narrate").voices()
    if language:
        items = [v for v in items if v.language.startswith(language)]
    if as_json:
        console.print_json(json.dumps([v.model_dump() for v in items]))
        return
    table = Table(title=f"{len(items)} voices")
    for col in ("name", "language", "gender"):
        table.add_column(col)
    for v in items:
        table.add_row(v.name, v.language, v.gender)
    console.print(table)


@app.command()
def presets() -> None:
    """List the presets with their caps and quality tiers."""
    from aiprod.production.presets import PRESETS

    table = Table(title="Presets")
    for col in ("name", "default s", "max s", "max scenes", "quality", "resolutions", "about"):
        table.add_column(col)
    for p in PRESETS.values():
        table.add_row(
            p.name,
            f"{p.default_duration:g}",
            f"{p.max_duration:g}",
            str(p.max_scenes),
            p.quality,
            ", ".join(p.resolutions),
            p.description,
        )
    console.print(table)


# --------------------------------------------------------------- platform
# Operator commands.  Each reads a fresh Settings() (AIPROD_* variables) so
# that what runs is what the environment says, not a cached default.


def _platform_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise _fail(
            _validation_message(exc).replace("invalid request", "invalid settings")
        ) from None


def _safe_url(url: str) -> str:
    """The database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def _migrate(direction: str, url: str, revision: str) -> None:
    """Run a migration, turning the errors an operator can fix into messages."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from aiprod.db import migrate

    try:
        if direction == "up":
            migrate.upgrade(url, revision)
        else:
            migrate.downgrade(url, revision)
    except CommandError as exc:
        raise _fail(f"migration failed: {exc}") from None
    except (SQLAlchemyError, OSError) as exc:
        raise _fail(f"cannot migrate {_safe_url(url)}: {exc}", 1) from None


@app.command()
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
    import logging

    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise _fail(f"unknown log level {log_level!r}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(max(level, logging.WARNING))
    settings = _platform_settings()
    _migrate("up", settings.sqlalchemy_url, "heads")
    asyncio.run(_run_worker(settings, concurrency))


async def _run_worker(settings: Settings, concurrency: int | None) -> None:
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
    from aiprod.events.webhooks import WebhookOutbox

    db = Database(settings.sqlalchemy_url)
    try:
        # Events reach API processes through Redis when configured, else
        # through the database (NOTIFY on PostgreSQL, polling on SQLite).
        async with worker_publisher(settings, WebhookOutbox()) as on_event:
            storage = Storage(settings.artifact_url)
            await Worker(db, storage, settings, concurrency, on_event).run(stop)
    finally:
        await db.dispose()


db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "heads",
) -> None:
    """Migrate the database (AIPROD_DATABASE_URL) up to REVISION."""
    settings = _platform_settings()
    _migrate("up", settings.sqlalchemy_url, revision)
    console.print(f"[green]upgraded[/] {_safe_url(settings.sqlalchemy_url)} to {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="Target revision: -1 (one step), an id, or base (drops all).")
    ] = "-1",
) -> None:
    """Migrate the database down to REVISION (one step by default)."""
    settings = _platform_settings()
    _migrate("down", settings.sqlalchemy_url, revision)
    console.print(f"[green]downgraded[/] {_safe_url(settings.sqlalchemy_url)} to {revision}")


users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="The account's email (its login).")],
    admin: Annotated[bool, typer.Option("--admin", help="Same as --role admin.")] = False,
    role: Annotated[
        str | None, typer.Option(help="admin, user, viewer or service (default: user).")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input."),
    ] = False,
) -> None:
    """Create a user (migrates the database first).  Prompts for the password
    twice unless --password-stdin is given."""
    import asyncio
    import re
    import sys

    from aiprod.identity import passwords
    from aiprod.identity.models import ROLES

    if admin and role not in (None, "admin"):
        raise _fail(f"--admin contradicts --role {role}")
    chosen = "admin" if admin else (role or "user")
    if chosen not in ROLES:
        raise _fail(f"role must be one of {', '.join(ROLES)}")
    email = email.strip()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email) or len(email) > 320:
        raise _fail(f"not an email address: {email!r}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise _fail("no password on standard input")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        passwords.check_strength(password)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    settings = _platform_settings()
    _migrate("up", settings.sqlalchemy_url, "heads")
    user_id = asyncio.run(_create_user(settings, email, password, chosen))
    console.print(f"[green]created[/] {chosen} {email.lower()} ({user_id})")


async def _create_user(settings: Settings, email: str, password: str, role: str) -> str:
    from aiprod.db.engine import Database
    from aiprod.identity.service import IdentityService, UserExists
    from aiprod.identity.tokens import InsecureConfiguration

    db = Database(settings.sqlalchemy_url)
    try:
        user = await IdentityService(db, settings).create_user(email, password, role=role)
    except UserExists as exc:
        raise _fail(str(exc), 1) from None
    except InsecureConfiguration as exc:
        raise _fail(str(exc), 1) from None
    finally:
        await db.dispose()
    return str(user.id)


audit_app = typer.Typer(help="The security audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        str | None,
        typer.Option(
            help="SEQ:HASH of a head printed earlier: also prove the chain still contains it "
            "(detects rows cut off the end)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recompute the audit log's hash chain.  Exit 0: intact; 1: tampered."""
    import asyncio

    parsed: tuple[int, str] | None = None
    if anchor is not None:
        seq, sep, digest = anchor.partition(":")
        if not sep or not seq.isdigit() or len(digest) != 64:
            raise _fail(f"--anchor takes SEQ:HASH (64 hex digits), got {anchor!r}")
        parsed = (int(seq), digest.lower())
    settings = _platform_settings()
    _migrate("up", settings.sqlalchemy_url, "heads")
    result = asyncio.run(_audit_verify(settings, parsed))
    if as_json:
        console.print_json(json.dumps(result))
    elif result["ok"]:
        console.print(
            f"[green]intact:[/] {result['count']} events; head seq {result['head_seq']} "
            f"hash {result['head_hash']}",
            highlight=False,
        )
        console.print("record the head elsewhere; check it later with --anchor SEQ:HASH")
    else:
        err.print(
            f"[bold red]TAMPERED:[/] {result['problem']} (at seq {result['first_bad_seq']}; "
            f"{result['count']} events verified before it)",
            highlight=False,
        )
    if not result["ok"]:
        raise typer.Exit(1)


async def _audit_verify(settings: Settings, anchor: tuple[int, str] | None) -> dict[str, Any]:
    from aiprod.db.engine import Database
    from aiprod.identity.audit import AuditLog

    db = Database(settings.sqlalchemy_url)
    try:
        v = await AuditLog(db).verify(anchor)
    finally:
        await db.dispose()
    return {
        "ok": v.ok,
        "count": v.count,
        "head_seq": v.head_seq,
        "head_hash": v.head_hash,
        "first_bad_seq": v.first_bad_seq,
        "problem": v.problem,
    }


keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate-due")
def keys_rotate_due(
    max_age_days: Annotated[
        float | None,
        typer.Option(min=0.0, help="Rotate keys older than this (default: the setting, 30)."),
    ] = None,
) -> None:
    """Rotate every API key older than the limit (what the API's periodic task
    does).  Owners claim the new secrets; old versions work for the grace period."""
    import asyncio

    settings = _platform_settings()
    _migrate("up", settings.sqlalchemy_url, "heads")
    rotated = asyncio.run(_rotate_due(settings, max_age_days))
    for line in rotated:
        console.print(line, highlight=False)
    console.print(f"[green]rotated {len(rotated)} key(s)[/]")


async def _rotate_due(settings: Settings, max_age_days: float | None) -> list[str]:
    from aiprod.db.engine import Database
    from aiprod.identity.audit import AuditContext
    from aiprod.identity.service import IdentityService
    from aiprod.identity.tokens import InsecureConfiguration

    db = Database(settings.sqlalchemy_url)
    try:
        identity = IdentityService(db, settings)
        done = await identity.keys.rotate_due(
            AuditContext(actor="cli"), max_age_days or None, by="admin"
        )
    except InsecureConfiguration as exc:
        raise _fail(str(exc), 1) from None
    finally:
        await db.dispose()
    return [
        f"{n.previous_key_id} → {n.key_id} (owner {n.owner_id}, old version until "
        f"{n.grace_until.isoformat()})"
        for n in done
    ]


@app.command()
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
        raise _fail(f"unknown log level {log_level!r}")
    settings = _platform_settings()
    overrides = {"host": host, "port": port, "workers": workers}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    _migrate("up", settings.sqlalchemy_url, "heads")
    # Also proves the signing key is usable before anything listens.
    password = asyncio.run(_ensure_admin(settings, admin_email))
    if password is not None:
        console.print(f"[bold green]created the first admin:[/] {admin_email.strip().lower()}")
        console.print(f"[bold]one-time password:[/] {password}", highlight=False)
        console.print("[yellow]it is shown only now; store it safely.[/]")
    base = f"http://{_browser_host(settings.host)}:{settings.port}"
    mode = (
        f"embedded worker x{settings.workers}"
        if settings.workers > 0
        else "no embedded worker (run `aiprod worker`)"
    )
    console.print(f"[bold]AIPROD API[/] on {base} ({mode})")
    console.print(f"API docs: {base}/docs")
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
    from aiprod.events.runtime import drain_streams_on_exit

    api = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            api,
            host=settings.host,
            port=settings.port,
            log_level=log_level.lower(),
            server_header=False,
            # Event messages are small JSON; compressing each one per
            # connection costs more CPU at fan-out than it saves bytes.
            ws_per_message_deflate=False,
        )
    )
    drain_streams_on_exit(server, api)  # open event streams must not hold shutdown
    _tune_gc()
    server.run()


def _tune_gc() -> None:
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
    from aiprod.identity.service import IdentityService, UserExists
    from aiprod.identity.tokens import InsecureConfiguration

    db = Database(settings.sqlalchemy_url)
    try:
        return await IdentityService(db, settings).ensure_admin(email.strip().lower())
    except InsecureConfiguration as exc:
        raise _fail(str(exc), 1) from None
    except UserExists:
        return None  # another server made it at the same moment
    except ValueError as exc:
        raise _fail(f"cannot create the admin: {exc}") from None
    finally:
        await db.dispose()


def _browser_host(host: str) -> str:
    """Where a local browser reaches a server bound to `host`."""
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 (mapping, not binding)
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


if __name__ == "__main__":  # pragma: no cover
    app()
