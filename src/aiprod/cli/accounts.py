"""Operator commands for accounts and security: `aiprod users create`,
`aiprod audit verify`, `aiprod keys rotate-due`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from aiprod.cli.common import console, err, fail, migrate, platform_settings
from aiprod.settings import Settings

users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
audit_app = typer.Typer(help="The security audit log.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `users`, `audit` and `keys` groups to `app`."""
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")
    app.add_typer(keys_app, name="keys")


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
    from aiprod.identity.permissions import ROLES

    if admin and role not in (None, "admin"):
        raise fail(f"--admin contradicts --role {role}")
    chosen = "admin" if admin else (role or "user")
    if chosen not in ROLES:
        raise fail(f"role must be one of {', '.join(ROLES)}")
    email = email.strip()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email) or len(email) > 320:
        raise fail(f"not an email address: {email!r}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise fail("no password on standard input")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        passwords.check_strength(password)
    except ValueError as exc:
        raise fail(str(exc)) from None
    settings = platform_settings()
    migrate("up", settings.sqlalchemy_url, "heads")
    user_id = asyncio.run(_create_user(settings, email, password, chosen))
    console.print(f"[green]created[/] {chosen} {email.lower()} ({user_id})")


async def _create_user(settings: Settings, email: str, password: str, role: str) -> str:
    from aiprod.db.engine import Database
    from aiprod.identity.service import IdentityService
    from aiprod.identity.tokens import InsecureConfiguration
    from aiprod.identity.users import UserExists

    db = Database(settings.sqlalchemy_url)
    try:
        user = await IdentityService(db, settings).create_user(email, password, role=role)
    except UserExists as exc:
        raise fail(str(exc), 1) from None
    except InsecureConfiguration as exc:
        raise fail(str(exc), 1) from None
    finally:
        await db.dispose()
    return str(user.id)


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
            raise fail(f"--anchor takes SEQ:HASH (64 hex digits), got {anchor!r}")
        parsed = (int(seq), digest.lower())
    settings = platform_settings()
    migrate("up", settings.sqlalchemy_url, "heads")
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


@keys_app.command("rotate-due")
def keys_rotate_due(
    max_age_days: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=3650.0,  # schemas.MAX_AGE_DAYS, as POST /v1/admin/keys/rotate takes
            help="Rotate keys older than this, in days (default: the setting, 30).",
        ),
    ] = None,
) -> None:
    """Rotate every API key older than the limit (what the API's periodic task
    does).  Owners claim the new secrets; old versions work for the grace period."""
    import asyncio

    settings = platform_settings()
    migrate("up", settings.sqlalchemy_url, "heads")
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
        done = await identity.api_keys.rotate_due(
            AuditContext(actor="cli"), max_age_days or None, by="admin"
        )
    except InsecureConfiguration as exc:
        raise fail(str(exc), 1) from None
    finally:
        await db.dispose()
    return [
        f"{n.previous_key_id} → {n.key_id} (owner {n.owner_id}, old version until "
        f"{n.grace_until.isoformat()})"
        for n in done
    ]
