"""The audit log: every security event, hash-chained, searchable, tamper-evident."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, update
from typer.testing import CliRunner

from aiprod.cli import app as cli
from aiprod.identity.audit import GENESIS, AuditContext, AuditLog, chain_hash, scrub
from aiprod.identity.models import ApiKey, AuditEvent, User
from tests.identity.conftest import Api, audit, bearer, make_key


async def _activity(api: Api) -> dict[str, Any]:
    """One of each security event."""
    user = await api.user()
    admin = await api.user("admin")
    admin_h = await api.headers(admin)
    t = await api.login(user.email)
    await api.client.post("/v1/auth/login", json={"email": user.email, "password": "nope"})
    r = await api.client.post("/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
    await api.client.post("/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})  # reuse
    h = bearer(r.json()["access_token"])
    t2 = await api.login(user.email)
    h = bearer(t2["access_token"])
    key, _ = await make_key(api, h)
    await api.client.post(f"/v1/api-keys/{key['id']}/rotate", json={}, headers=h)
    await api.client.delete(f"/v1/api-keys/{key['id']}", headers=h)
    await api.client.get("/v1/admin/users", headers=h)  # permission denied
    await api.client.patch(f"/v1/admin/users/{user.id}", json={"role": "viewer"}, headers=admin_h)
    await api.client.post("/v1/auth/logout", json={"refresh_token": t2["refresh_token"]})
    return {"user": user, "admin": admin, "admin_headers": admin_h}


async def test_every_security_event_is_recorded(api: Api) -> None:
    ctx = await _activity(api)
    events = await audit(api)
    kinds = [e.event for e in events]
    for expected in (
        "user.created",
        "login.succeeded",
        "login.failed",
        "token.refreshed",
        "refresh.reuse_detected",
        "api_key.created",
        "api_key.rotated",
        "api_key.revoked",
        "permission.denied",
        "user.role_changed",
        "logout",
    ):
        assert expected in kinds, expected
    for e in events:
        assert e.occurred_at.tzinfo == UTC
        assert e.outcome in ("success", "failure", "denied")
    [change] = [e for e in events if e.event == "user.role_changed"]
    assert change.actor_id == ctx["admin"].id and change.subject_id == str(ctx["user"].id)
    assert change.ip == "127.0.0.1" and change.request_id
    [failed] = [e for e in events if e.event == "login.failed"]
    assert failed.outcome == "failure" and failed.details == {"reason": "bad_password"}
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_chain_verifies_and_tampering_is_found(api: Api) -> None:
    await _activity(api)
    log = AuditLog(api.db)
    ok = await log.verify()
    assert ok.ok and ok.count == len(await audit(api)) and ok.count > 10
    middle = ok.count // 2

    # Editing a row.
    async with api.db.transaction() as s:
        await s.execute(
            update(AuditEvent).where(AuditEvent.seq == middle).values(outcome="success")
        )
        await s.execute(
            update(AuditEvent).where(AuditEvent.seq == middle).values(details={"forged": True})
        )
    bad = await log.verify()
    assert not bad.ok and bad.first_bad_seq == middle and "edited" in (bad.problem or "")


async def test_removed_rows_and_truncation_are_found(api: Api) -> None:
    await _activity(api)
    log = AuditLog(api.db)
    head = await log.verify()
    anchor = (head.head_seq, head.head_hash)
    assert (await log.verify(anchor)).ok
    async with api.db.transaction() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.seq == head.head_seq))
    # Cutting the tail leaves a valid shorter chain: only the anchor shows it.
    assert (await log.verify()).ok
    cut = await log.verify(anchor)
    assert not cut.ok and cut.first_bad_seq == head.head_seq
    async with api.db.transaction() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    gap = await log.verify()
    assert not gap.ok and gap.first_bad_seq == 4 and "missing" in (gap.problem or "")


async def test_rows_rewritten_with_new_hashes_break_the_link(api: Api) -> None:
    await _activity(api)
    async with api.db.transaction() as s:
        row = await s.get(AuditEvent, 5)
        assert row is not None
        row.details = {"rewritten": True}
        row.hash = chain_hash(row.prev_hash, row)  # the attacker recomputes this row…
    bad = await AuditLog(api.db).verify()
    assert not bad.ok and bad.first_bad_seq == 6  # …but the next row still names the old hash


async def test_concurrent_appends_keep_one_chain(api: Api) -> None:
    log = AuditLog(api.db)
    await asyncio.gather(
        *(log.log("test.event", "success", AuditContext(actor=f"a{i}")) for i in range(20))
    )
    v = await log.verify()
    assert v.ok and v.count == 20
    first = (await audit(api))[0]
    assert first.prev_hash == GENESIS


async def test_admin_api_search_and_verify(api: Api) -> None:
    ctx = await _activity(api)
    h = ctx["admin_headers"]
    r = await api.client.get("/v1/admin/audit", params={"event": "login."}, headers=h)
    assert r.status_code == 200
    kinds = {i["event"] for i in r.json()["items"]}
    assert kinds == {"login.succeeded", "login.failed"}
    r = await api.client.get(
        "/v1/admin/audit", params={"actor_id": str(ctx["admin"].id)}, headers=h
    )
    assert r.json()["items"] and all(
        i["actor_id"] == str(ctx["admin"].id) for i in r.json()["items"]
    )
    r = await api.client.get("/v1/admin/audit", params={"outcome": "denied"}, headers=h)
    assert {i["event"] for i in r.json()["items"]} >= {
        "refresh.reuse_detected",
        "permission.denied",
    }
    r = await api.client.get(
        "/v1/admin/audit", params={"subject_id": str(ctx["user"].id)}, headers=h
    )
    assert "user.role_changed" in {i["event"] for i in r.json()["items"]}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await api.client.get("/v1/admin/audit", params={"since": future}, headers=h)
    assert r.json()["items"] == []
    naive = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    r = await api.client.get("/v1/admin/audit", params={"since": naive, "limit": 3}, headers=h)
    page = r.json()
    assert len(page["items"]) == 3 and page["next_before"] == page["items"][-1]["seq"]
    older = await api.client.get(
        "/v1/admin/audit", params={"before": page["next_before"], "limit": 3}, headers=h
    )
    assert older.json()["items"][0]["seq"] == page["next_before"] - 1
    r = await api.client.get("/v1/admin/audit/verify", headers=h)
    assert r.json()["ok"] is True and r.json()["count"] > 10
    user_h = await api.headers(await api.user())
    assert (await api.client.get("/v1/admin/audit", headers=user_h)).status_code == 403


def test_scrub_removes_secrets() -> None:
    cleaned = scrub(
        {
            "password": "hunter2",
            "refresh_token": "rt_abc",
            "nested": {"Authorization": "Bearer x", "note": "aipk_123", "ok": "fine"},
            "list": ["eyJhbGciOi.x.y", 3, 1.5],
        }
    )
    text = json.dumps(cleaned)
    for secret in ("hunter2", "rt_abc", "Bearer x", "aipk_123", "eyJhbGciOi"):
        assert secret not in text
    assert cleaned["nested"]["ok"] == "fine" and cleaned["list"][1:] == [3, "1.5"]


# ----------------------------------------------------------------------- CLI


def _cli(url: str, tmp_path: Path, *args: str) -> Any:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AIPROD_")}
    env.update(AIPROD_DATABASE_URL=url, AIPROD_DATA_DIR=str(tmp_path / "cli-data"))
    return CliRunner().invoke(cli, list(args), env=env)


async def test_cli_audit_verify(api: Api, tmp_path: Path) -> None:
    await _activity(api)
    url = api.settings.sqlalchemy_url
    ok = await asyncio.to_thread(_cli, url, tmp_path, "audit", "verify", "--json")
    assert ok.exit_code == 0, ok.output
    result = json.loads(ok.output)
    assert result["ok"] is True
    anchor = f"{result['head_seq']}:{result['head_hash']}"
    assert (
        await asyncio.to_thread(_cli, url, tmp_path, "audit", "verify", "--anchor", anchor)
    ).exit_code == 0
    async with api.db.transaction() as s:
        await s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor="mallory"))
    bad = await asyncio.to_thread(_cli, url, tmp_path, "audit", "verify")
    assert bad.exit_code == 1 and "TAMPERED" in bad.output and "seq 2" in bad.output
    bad_anchor = await asyncio.to_thread(_cli, url, tmp_path, "audit", "verify", "--anchor", "x")
    assert bad_anchor.exit_code == 2


async def test_cli_keys_rotate_due(api: Api, tmp_path: Path) -> None:
    _, headers = await api.account()
    key, secret = await make_key(api, headers)
    async with api.db.transaction() as s:
        await s.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(key["id"]))
            .values(created_at=datetime.now(UTC) - timedelta(days=40))
        )
    env_url = api.settings.sqlalchemy_url
    # The CLI must use the server's HMAC secret, as a deployment would configure it.
    os.environ.pop("AIPROD_API_KEY_SECRET", None)
    data_dir = api.settings.data_dir
    result = await asyncio.to_thread(
        lambda: CliRunner().invoke(
            cli,
            ["keys", "rotate-due"],
            env={
                **{k: None for k in os.environ if k.startswith("AIPROD_")},
                "AIPROD_DATABASE_URL": env_url,
                "AIPROD_DATA_DIR": str(data_dir),
            },
        )
    )
    assert result.exit_code == 0, result.output
    assert "rotated 1 key(s)" in result.output and key["id"] in result.output
    listed = (await api.client.get("/v1/api-keys", headers=headers)).json()["items"]
    assert sorted(k["status"] for k in listed) == ["grace", "pending"]
    assert (await api.client.get("/v1/me", headers=bearer(secret))).status_code == 200


async def test_audit_log_survives_the_actor(api: Api) -> None:
    """Audit rows keep their actor after the user is deleted (no foreign key)."""
    user = await api.user()
    await api.login(user.email)
    async with api.db.transaction() as s:
        await s.execute(delete(User).where(User.id == user.id))
    assert any(e.actor_id == user.id for e in await audit(api))
    assert (await AuditLog(api.db).verify()).ok
