"""``GET /metrics``: who may read it, and that its figures follow what
happens (requests, jobs, workers, leases, rate limits), on SQLite and
PostgreSQL.  Counters are shared by every app of a test process, so each
test compares a scrape before with a scrape after; no test times anything."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from aiprod.db.base import utcnow
from aiprod.identity.models import AuditEvent
from aiprod.jobs.models import Job
from aiprod.settings import Settings
from tests.api.conftest import PASSWORD, WORKER, Api, running
from tests.api.test_access import PATH_VALUES, _operations
from tests.conftest import base_settings
from tests.ops.conftest import SCRAPE_TOKEN, Samples, parse, scrape, value

TOKEN = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}


# ------------------------------------------------------------------- access


async def test_anonymous_scrapes_are_refused(api: Api) -> None:
    r = await api.client.get("/metrics")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized"
    wrong = await api.client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    # Almost the token is not the token.
    almost = SCRAPE_TOKEN[:-1] + "t"
    r = await api.client.get("/metrics", headers={"Authorization": f"Bearer {almost}"})
    assert r.status_code == 401


async def test_non_admins_are_refused_and_audited(api: Api) -> None:
    for role in ("user", "viewer", "service"):
        _, headers = await api.account(role)
        r = await api.client.get("/metrics", headers=headers)
        assert r.status_code == 403, (role, r.text)
        assert r.json()["error"]["details"] == {"needs": "admin:audit or the scrape token"}
    # An admin's API key without the admin:audit scope is not enough either.
    _, admin = await api.account("admin")
    r = await api.client.post(
        "/v1/api-keys", json={"name": "ci", "scopes": ["jobs:read"]}, headers=admin
    )
    assert r.status_code == 201, r.text
    key = r.json()["secret"]
    r = await api.client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    async with api.db.session() as s:
        denied = (
            (await s.execute(select(AuditEvent).where(AuditEvent.event == "permission.denied")))
            .scalars()
            .all()
        )
    assert len(denied) == 4
    assert all(e.details.get("path") == "/metrics" for e in denied), [e.details for e in denied]


async def test_an_admin_and_the_scrape_token_may_read(api: Api) -> None:
    r = await api.client.get("/metrics", headers=TOKEN)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert "aiprod_http_requests_total" in r.text
    assert value(parse(r.text), "aiprod_database_up") == 1

    admin, headers = await api.account("admin")
    assert (await api.client.get("/metrics", headers=headers)).status_code == 200
    r = await api.client.post(
        "/v1/api-keys", json={"name": "grafana", "scopes": ["admin:audit"]}, headers=headers
    )
    assert r.status_code == 201, r.text
    key = {"Authorization": f"Bearer {r.json()['secret']}"}
    assert (await api.client.get("/metrics", headers=key)).status_code == 200

    # The studio's cookie session (a GET needs no CSRF token).
    r = await api.client.post(
        "/v1/auth/session",
        json={"email": admin.email, "password": PASSWORD},
        headers={"Origin": "http://aiprod.test"},
    )
    assert r.status_code == 200, r.text
    assert (await api.client.get("/metrics")).status_code == 200
    api.client.cookies.clear()
    assert (await api.client.get("/metrics")).status_code == 401


async def test_without_a_token_file_only_admins_may_read(tmp_path: Path, database_url: str) -> None:
    settings = base_settings(tmp_path, database_url, api_key_rotation_check_seconds=0)
    async with running(settings) as api:
        assert (await api.client.get("/metrics", headers=TOKEN)).status_code == 401
        _, admin = await api.account("admin")
        assert (await api.client.get("/metrics", headers=admin)).status_code == 200


def test_a_short_or_unreadable_token_refuses_to_start(tmp_path: Path) -> None:
    short = tmp_path / "short.token"
    short.write_text("too-short-a-token")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(_env_file=None, metrics_token_file=short)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="cannot be read"):
        Settings(_env_file=None, metrics_token_file=tmp_path / "missing")  # type: ignore[call-arg]


async def test_the_route_declares_its_need(api: Api) -> None:
    op = api.app.openapi()["paths"]["/metrics"]["get"]
    assert op["x-aiprod-permission"] == "admin:audit or the scrape token"
    assert {"401", "403"} <= set(op["responses"])


# ---------------------------------------------------------------- requests


async def test_requests_are_counted_by_route_template(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    before = await scrape(api)
    for _ in range(3):
        r = await api.client.get(f"/v1/productions/{job['id']}", headers=headers)
        assert r.status_code == 200
    missing = await api.client.get(f"/v1/productions/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404
    assert (await api.client.get("/no/such/page")).status_code == 404
    r = await api.client.get("/metrics", headers=TOKEN)
    after = parse(r.text)

    route = "/v1/productions/{production_id}"

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("aiprod_http_requests_total", method="GET", route=route, status="200") == 3
    assert delta("aiprod_http_requests_total", method="GET", route=route, status="404") == 1
    assert delta("aiprod_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert delta("aiprod_http_request_duration_seconds_count", method="GET", route=route) == 4
    assert (
        delta("aiprod_http_request_duration_seconds_bucket", method="GET", route=route, le="+Inf")
        == 4
    )
    # Bounded labels: no raw path, no id, ever.
    assert job["id"] not in r.text
    assert "/no/such/page" not in r.text


async def test_unknown_methods_share_one_label(api: Api) -> None:
    before = await scrape(api)
    r = await api.client.request("BREW", "/health/live")
    assert r.status_code == 405
    after = await scrape(api)
    labels = {"method": "other", "route": "/health/live", "status": "405"}
    assert (
        value(after, "aiprod_http_requests_total", **labels)
        - value(before, "aiprod_http_requests_total", **labels)
        == 1
    )


async def test_rate_limit_refusals_are_counted(tmp_path: Path, database_url: str) -> None:
    settings = base_settings(
        tmp_path,
        database_url,
        api_key_rotation_check_seconds=0,
        rate_limits={"auth": "2/minute"},
    )
    async with running(settings) as api:
        _, admin = await api.account("admin")  # one login: one of the two
        labels = {"class": "auth", "key": "address"}
        r = await api.client.get("/metrics", headers=admin)
        before = value(parse(r.text), "aiprod_rate_limit_refusals_total", **labels)
        statuses = []
        for _ in range(3):
            r = await api.client.post(
                "/v1/auth/login", json={"email": "x@example.com", "password": "y" * 12}
            )
            statuses.append(r.status_code)
        assert statuses.count(429) == 2, statuses
        r = await api.client.get("/metrics", headers=admin)
        assert value(parse(r.text), "aiprod_rate_limit_refusals_total", **labels) - before == 2


# --------------------------------------------------------------------- jobs


async def test_job_figures_follow_the_database(api: Api) -> None:
    _, headers = await api.account()
    first = await api.submit(headers)
    await api.submit(headers)
    before = await scrape(api)
    assert value(before, "aiprod_jobs", status="queued", stage="") == 2
    assert value(before, "aiprod_job_queue_depth") == 2
    assert value(before, "aiprod_job_queue_oldest_age_seconds") >= 0
    assert value(before, "aiprod_workers_alive") == 0

    # A retry scheduled later is queued but not due: not in the queue's depth.
    async with api.db.transaction() as s:
        await s.execute(
            update(Job)
            .where(Job.id != uuid.UUID(first["id"]))
            .values(next_attempt_at=utcnow() + timedelta(hours=1))
        )
    mid = await scrape(api)
    assert value(mid, "aiprod_jobs", status="queued", stage="") == 2
    assert value(mid, "aiprod_job_queue_depth") == 1

    await api.jobs.beat(WORKER, "host", 1)
    await api.complete(first["id"], {"video.mp4": b"\x00" * 64})
    after = await scrape(api)
    assert value(after, "aiprod_jobs", status="queued", stage="") == 1
    assert value(after, "aiprod_job_queue_depth") == 0
    assert value(after, "aiprod_job_queue_oldest_age_seconds") == 0
    assert value(after, "aiprod_workers_alive") == 1
    assert value(after, "aiprod_worker_last_heartbeat_timestamp_seconds") > 0
    for type_ in ("job.started", "job.completed"):
        assert (
            value(after, "aiprod_job_events_total", type=type_)
            - value(before, "aiprod_job_events_total", type=type_)
            == 1
        )


async def test_a_reclaimed_lease_is_counted(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    await api.claim(job["id"])
    async with api.db.transaction() as s:  # its worker died: the lease ran out
        await s.execute(
            update(Job)
            .where(Job.id == uuid.UUID(job["id"]))
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    before = await scrape(api)
    assert value(before, "aiprod_jobs", status="processing", stage="") == 1
    assert (await api.jobs.claim("another-worker")) is not None
    after = await scrape(api)
    reclaims = "aiprod_job_lease_reclaims_total"
    assert (
        value(after, reclaims, outcome="resumed") - value(before, reclaims, outcome="resumed") == 1
    )


async def test_key_and_disk_figures(api: Api) -> None:
    _, headers = await api.account("admin")
    samples = await scrape(api)
    assert value(samples, "aiprod_api_key_oldest_age_seconds") == 0  # no key yet
    r = await api.client.post("/v1/api-keys", json={"name": "k"}, headers=headers)
    assert r.status_code == 201
    samples = await scrape(api)
    assert value(samples, "aiprod_api_key_oldest_age_seconds") >= 0
    assert value(samples, "aiprod_api_key_rotate_after_seconds") == 30 * 86400
    assert value(samples, "aiprod_data_dir_free_bytes") > 0
    assert value(samples, "aiprod_data_dir_capacity_bytes") >= value(
        samples, "aiprod_data_dir_free_bytes"
    )
    assert value(samples, "aiprod_build_info", version=__import__("aiprod").__version__) == 1


async def test_every_route_is_counted_under_its_documented_template(api: Api) -> None:
    """Each documented operation, called without credentials, is counted under
    its OpenAPI path (routers included under a prefix too), never its raw path."""
    _, headers = await api.account()
    job = await api.submit(headers)
    ops = _operations(api)
    values = {**PATH_VALUES, "production_id": job["id"]}
    before = await scrape(api)
    for method, template, body in ops:
        path = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), template)
        await api.client.request(method, path, json=body)
    after = await scrape(api)

    def count(samples: Samples, method: str, route: str) -> float:
        return sum(
            v
            for (name, labels), v in samples.items()
            if name == "aiprod_http_requests_total"
            and ("method", method) in labels
            and ("route", route) in labels
        )

    wrong = [
        f"{method} {template}"
        for method, template, _ in ops
        if count(after, method, template) - count(before, method, template) < 1
    ]
    assert wrong == [], wrong
    assert len(ops) >= 40
