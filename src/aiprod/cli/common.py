"""Helpers shared by the command modules: the consoles, error exits, the stage
progress bar, and the settings/migration steps every operator command takes."""

from __future__ import annotations

import os

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from aiprod.settings import Settings

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` as an error and return the exit to raise."""
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def validation_message(exc: ValidationError) -> str:
    lines = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "request"
        lines.append(f"  {where}: {e['msg']}")
    return "invalid request:\n" + "\n".join(lines)


def stage_progress() -> Progress:
    """The per-stage progress bar of `aiprod make`: note, elapsed time and ETA."""
    return Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TextColumn("[dim]ETA {task.fields[eta]}"),
        console=console,
    )


# Operator commands each read a fresh Settings() (AIPROD_* variables) so
# that what runs is what the environment says, not a cached default.


def platform_settings() -> Settings:
    """Settings for an operator command, which from here on creates every file
    private to the service account (umask 077: the database, the stage cache,
    checkpoints and artifacts hold users' data and secrets)."""
    os.umask(0o077)
    try:
        return Settings()
    except ValidationError as exc:
        raise fail(validation_message(exc).replace("invalid request", "invalid settings")) from None


def safe_url(url: str) -> str:
    """The database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def migrate(direction: str, url: str, revision: str) -> None:
    """Run a migration, turning the errors an operator can fix into messages."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from aiprod.db import migrate as migrations

    try:
        if direction == "up":
            migrations.upgrade(url, revision)
        else:
            migrations.downgrade(url, revision)
    except CommandError as exc:
        raise fail(f"migration failed: {exc}") from None
    except (SQLAlchemyError, OSError) as exc:
        raise fail(f"cannot migrate {safe_url(url)}: {exc}", 1) from None
