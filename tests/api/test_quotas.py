"""Quotas: set by role, overridden per user by an admin (audited), refused
with a clear code before any work starts, shown by ``GET /v1/me/usage``.

429 ``quota_exceeded`` where waiting helps (running, per day; per day with
``Retry-After``), 403 ``quota_exceeded`` where it does not (storage, spend);
``details.quota`` names the quota.  On SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from aiprod.db.base import utcnow
from aiprod.jobs.models import Job
from aiprod.jobs.quotas import month_start, next_month
from aiprod.settings import Settings
from tests.api import media_files as mf
from tests.api.conftest import Api, running
from tests.conftest import base_settings

LIMITLESS = {"running": None, "per_day": None, "storage_bytes": None, "spend_month_usd": None}


@pytest.fixture
def quota_settings(tmp_path: Path, database_url: str) -> Settings:
    """Users may run 2 at once and submit 3 a day; admins have no limits."""
    return base_settings(
        tmp_path,
        database_url,
        quotas={
            "user": {"running": 2, "per_day": 3, "storage_bytes": None, "spend_month_usd": None},
            "admin": LIMITLESS,
        },
        api_key_rotation_check_seconds=0,
        retention_check_seconds=0,
    )


@pytest.fixture
async def api(quota_settings: Settings) -> AsyncIterator[Api]:
    async with running(quota_settings) as a:
        yield a


async def submit(api: Api, headers: dict[str, str], seed: int = 0) -> Any:
    body = {"prompt": "How honeybees turn nectar into honey", "seed": seed}
    return await api.client.post("/v1/productions", json=body, headers=headers)


async def jobs_of(api: Api, owner: uuid.UUID) -> int:
    async with api.db.session() as s:
        return int(await s.scalar(select(func.count()).where(Job.owner_id == owner)) or 0)


async def set_quotas(api: Api, user_id: uuid.UUID, body: dict[str, Any]) -> Any:
    _, admin = await api.account("admin")
    r = await api.client.put(f"/v1/admin/users/{user_id}/quotas", json=body, headers=admin)
    assert r.status_code == 200, r.text
    return r.json()


async def test_running_at_once_is_refused_429_before_the_job_exists(api: Api) -> None:
    user, headers = await api.account()
    first = (await submit(api, headers, 1)).json()["job"]["id"]
    assert (await submit(api, headers, 2)).status_code == 202
    r = await submit(api, headers, 3)
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"] == {"quota": "running", "limit": 2, "used": 2}
    assert "Retry-After" not in r.headers  # when one finishes is not known
    assert await jobs_of(api, user.id) == 2  # nothing stored, nothing queued
    # One finishes: there is room again.
    await api.complete(first)
    assert (await submit(api, headers, 3)).status_code == 202


async def test_requeueing_counts_against_running(api: Api) -> None:
    """Retry (and approve, re-render) put a production back in the queue."""
    _, headers = await api.account()
    failed = (await submit(api, headers, 1)).json()["job"]["id"]
    await api.fail(failed)
    for seed in (2, 3):
        assert (await submit(api, headers, seed)).status_code == 202
    r = await api.client.post(f"/v1/productions/{failed}/retry", headers=headers)
    assert r.status_code == 429 and r.json()["error"]["details"]["quota"] == "running"


async def test_per_day_is_refused_with_retry_after(api: Api) -> None:
    user, headers = await api.account()
    await set_quotas(api, user.id, {"running": None})  # only the daily limit counts here
    for seed in range(3):
        assert (await submit(api, headers, seed)).status_code == 202
    # The first submission was made 20 hours ago: it leaves the window in 4.
    async with api.db.transaction() as s:
        oldest = (
            await s.execute(
                select(Job.id).where(Job.owner_id == user.id).order_by(Job.created_at).limit(1)
            )
        ).scalar_one()
        await s.execute(
            update(Job).where(Job.id == oldest).values(created_at=utcnow() - timedelta(hours=20))
        )
    r = await submit(api, headers, 9)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "quota_exceeded"
    assert r.json()["error"]["details"] == {"quota": "per_day", "limit": 3, "used": 3}
    assert 4 * 3600 - 60 <= int(r.headers["Retry-After"]) <= 4 * 3600
    # Past the window, it no longer counts.
    async with api.db.transaction() as s:
        await s.execute(
            update(Job).where(Job.id == oldest).values(created_at=utcnow() - timedelta(hours=25))
        )
    assert (await submit(api, headers, 9)).status_code == 202


async def test_spend_per_month_is_refused_403_with_the_reset(api: Api) -> None:
    user, headers = await api.account()
    first = await submit(api, headers, 1)
    cost = first.json()["estimate"]["total"]
    assert cost > 0
    await set_quotas(api, user.id, {"spend_month_usd": cost * 1.5})
    r = await submit(api, headers, 2)
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded"
    details = error["details"]
    assert details["quota"] == "spend_month_usd"
    assert details["used"] == pytest.approx(cost) and details["needed"] == pytest.approx(cost)
    assert details["resets_at"] == next_month(utcnow()).isoformat().replace("+00:00", "Z")
    # A production cancelled before it started spent nothing.
    job_id = first.json()["job"]["id"]
    assert (await api.client.post(f"/v1/productions/{job_id}/cancel", headers=headers)).is_success
    assert (await submit(api, headers, 2)).status_code == 202


async def test_storage_counts_files_and_uploads_and_refuses_403(api: Api) -> None:
    user, headers = await api.account()
    job_id = (await submit(api, headers)).json()["job"]["id"]
    files = {"video.mp4": b"v" * 3000, "subtitles.srt": b"s" * 200}
    await api.complete(job_id, files)
    picture = mf.image()
    r = await api.client.post(
        "/v1/media", files={"file": ("p.png", picture, "image/png")}, headers=headers
    )
    assert r.status_code == 201, r.text
    usage = (await api.client.get("/v1/me/usage", headers=headers)).json()
    assert usage["storage_bytes"]["artifacts"] == 3200
    assert usage["storage_bytes"]["uploads"] == len(picture)
    assert usage["storage_bytes"]["used"] == 3200 + len(picture)
    # At the limit: no new production, no new upload.
    await set_quotas(api, user.id, {"storage_bytes": 3200 + len(picture)})
    r = await submit(api, headers, 5)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "quota_exceeded"
    assert r.json()["error"]["details"] == {
        "quota": "storage_bytes",
        "limit": 3200 + len(picture),
        "used": 3200 + len(picture),
    }
    r = await api.client.post(
        "/v1/media",
        files={"file": ("q.png", mf.image(color=(1, 2, 3)), "image/png")},
        headers=headers,
    )
    assert r.status_code == 403 and r.json()["error"]["details"]["quota"] == "storage_bytes"


async def test_usage_shows_use_against_limits(api: Api) -> None:
    user, headers = await api.account()
    await submit(api, headers, 1)
    r = await api.client.get("/v1/me/usage", headers=headers)
    assert r.status_code == 200, r.text
    usage = r.json()
    assert usage["user_id"] == str(user.id) and usage["role"] == "user"
    assert usage["running"] == {"used": 1, "limit": 2, "remaining": 1}
    assert usage["per_day"] == {"used": 1, "limit": 3, "remaining": 2}
    assert usage["storage_bytes"]["limit"] is None and usage["storage_bytes"]["remaining"] is None
    spend = usage["spend_month_usd"]
    assert spend["used"] > 0 and spend["limit"] is None
    assert datetime.fromisoformat(spend["resets_at"]) == next_month(utcnow())
    assert usage["overrides"] == {}
    assert set(usage["rate_limits"]) == {"auth", "writes", "reads", "exports", "streams"}
    # A viewer may read its own usage too.
    _, viewer = await api.account("viewer")
    assert (await api.client.get("/v1/me/usage", headers=viewer)).status_code == 200
    assert (await api.client.get("/v1/me/usage")).status_code == 401


async def test_admins_override_a_users_quotas_audited(api: Api) -> None:
    user, headers = await api.account()
    admin, admin_headers = await api.account("admin")
    url = f"/v1/admin/users/{user.id}/quotas"
    # Only admins.
    r = await api.client.put(url, json={"running": 5}, headers=headers)
    assert r.status_code == 403
    r = await api.client.get(url, headers=headers)
    assert r.status_code == 403
    # A missing user; unknown fields; out-of-range values.
    missing = f"/v1/admin/users/{uuid.uuid4()}/quotas"
    assert (await api.client.put(missing, json={}, headers=admin_headers)).status_code == 404
    for bad in (
        {"parallel": 3},
        {"running": -1},
        {"spend_month_usd": "1"},
        {"per_day": True},
        {"running": "2"},
        {"running": 1.5},
    ):
        assert (await api.client.put(url, json=bad, headers=admin_headers)).status_code == 422
    # Override one, lift another: the rest follow the role.
    r = await api.client.put(url, json={"running": 1, "per_day": None}, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["overrides"] == {"running": 1, "per_day": None}
    assert body["running"]["limit"] == 1 and body["per_day"]["limit"] is None
    assert (await submit(api, headers, 1)).status_code == 202
    assert (await submit(api, headers, 2)).status_code == 429
    r = await api.client.get(url, headers=admin_headers)
    assert r.json()["running"] == {"used": 1, "limit": 1, "remaining": 0}
    mine = (await api.client.get("/v1/me/usage", headers=headers)).json()
    assert mine["overrides"] == {"running": 1, "per_day": None}
    # {} returns to the role's limits.
    r = await api.client.put(url, json={}, headers=admin_headers)
    assert r.json()["overrides"] == {} and r.json()["running"]["limit"] == 2
    assert (await submit(api, headers, 2)).status_code == 202
    # Both changes are in the audit log, with who, whom, before and after.
    from aiprod.identity.audit import AuditFilter

    events = await api.identity.audit.query(AuditFilter(event="user.quotas_changed"), 10)
    assert [e.details for e in reversed(events)] == [
        {"from": {}, "to": {"running": 1, "per_day": None}},
        {"from": {"running": 1, "per_day": None}, "to": {}},
    ]
    assert all(e.actor_id == admin.id and e.subject_id == str(user.id) for e in events)


async def test_role_defaults_apply_and_admins_are_unlimited(api: Api) -> None:
    _, headers = await api.account("admin")
    for seed in range(5):  # past every user limit
        assert (await submit(api, headers, seed)).status_code == 202
    usage = (await api.client.get("/v1/me/usage", headers=headers)).json()
    assert usage["running"] == {"used": 5, "limit": None, "remaining": None}


def test_month_boundaries() -> None:
    from datetime import UTC

    at = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert month_start(at) == datetime(2026, 12, 1, tzinfo=UTC)
    assert next_month(at) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_month(datetime(2026, 2, 14, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)
