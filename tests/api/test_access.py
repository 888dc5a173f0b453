"""Who may touch which production.

The route list comes from the app's own OpenAPI document, so a route added
later is checked automatically; a new route whose body this file cannot
build fails the test until a sample is added here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.api.conftest import Api, storyboard

JOB_PREFIX = "/v1/productions/{production_id}"
PUBLIC = {
    *("/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/auth/session"),
    # The studio's sign-in with an external provider: browser navigations.
    *("/v1/auth/oidc/providers", "/v1/auth/oidc/{provider}/start", "/v1/auth/oidc/callback"),
}

# A valid body per request schema, so that only ownership can make it fail.
SAMPLE_BODIES: dict[str, Any] = {
    "ProductionRequest": {"prompt": "How honeybees turn nectar into honey"},
    "Storyboard": storyboard().model_dump(mode="json"),
    "RerenderRequest": {"narration": "A different line."},
    "LoginRequest": {"email": "x@example.com", "password": "whatever"},
    "RefreshRequest": {"refresh_token": "rt_x"},
    "LogoutRequest": {"refresh_token": "rt_x"},
    "WebhookCreate": {"url": "https://hooks.example.com/aiprod", "event_types": ["*"]},
    "WebhookUpdate": {"enabled": False},
    "RevokeRequest": {},
    "PasswordChange": {"current_password": "x" * 12, "new_password": "y" * 12},
    "ApiKeyCreate": {"name": "sample key"},
    "ApiKeyRotate": {},
    "RevokeAllKeys": {},
    "RotateDue": {},
    "UserPatch": {"role": "viewer"},
    "QuotaOverrides": {"running": 5},
}
PATH_VALUES = {
    "index": "0",
    "name": "video.mp4",
    "webhook_id": "00000000-0000-4000-8000-000000000001",
    "delivery_id": "00000000-0000-4000-8000-000000000002",
    "key_id": "00000000-0000-4000-8000-000000000003",
    "user_id": "00000000-0000-4000-8000-000000000004",
    "media_id": "00000000-0000-4000-8000-000000000005",
    "voice_id": "en",
}


def _operations(api: Api) -> list[tuple[str, str, Any]]:
    """(method, path template, JSON body or None) for every documented operation."""
    ops = []
    for path, item in api.app.openapi()["paths"].items():
        for method, op in item.items():
            if method == "head":
                continue  # its GET's handler, without a body (tests/api/test_artifacts.py)
            body = None
            # Multipart uploads (POST /v1/media) are sent without a body: their
            # route answers 401/403 before reading one, 415 after.
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                schema = ref.rsplit("/", 1)[-1]
                assert schema in SAMPLE_BODIES, (
                    f"{method.upper()} {path}: add a sample {schema} body to SAMPLE_BODIES"
                )
                body = SAMPLE_BODIES[schema]
            ops.append((method.upper(), path, body))
    return ops


def _fill(template: str, production_id: str) -> str:
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "production_id":
            return production_id
        assert name in PATH_VALUES, f"{template}: add a value for {{{name}}} to PATH_VALUES"
        return PATH_VALUES[name]

    return re.sub(r"\{(\w+)\}", value, template)


async def _completed_job(api: Api) -> tuple[dict[str, str], str]:
    """A job of its own user in which every job route has something to act on."""
    _, headers = await api.account()
    job = await api.submit(headers)
    await api.complete(job["id"], {"video.mp4": b"\x00" * 64})
    return headers, job["id"]


async def test_every_job_route_hides_other_users_jobs(api: Api) -> None:
    owner_headers, job_id = await _completed_job(api)
    _, stranger = await api.account()
    missing = str(uuid.uuid4())
    job_ops = [op for op in _operations(api) if op[1].startswith(JOB_PREFIX)]
    assert len(job_ops) >= 10, job_ops  # the route list really was found

    for method, template, body in job_ops:
        theirs = await api.client.request(
            method, _fill(template, job_id), json=body, headers=stranger
        )
        nothing = await api.client.request(
            method, _fill(template, missing), json=body, headers=stranger
        )
        where = f"{method} {template}"
        assert theirs.status_code == 404, f"{where} leaks: {theirs.status_code} {theirs.text}"
        assert nothing.status_code == 404, where
        # Same answer as for a job that does not exist, apart from the id itself.
        assert theirs.json()["error"]["code"] == nothing.json()["error"]["code"] == "not_found"
        assert theirs.json()["error"]["message"].replace(job_id, "<id>") == nothing.json()["error"][
            "message"
        ].replace(missing, "<id>"), where
        assert theirs.headers.keys() - {"x-request-id"} == nothing.headers.keys() - {
            "x-request-id"
        }, where

    # The owner reaches every read route, so the 404s above were about ownership.
    for method, template, _ in job_ops:
        if method == "GET":
            r = await api.client.get(_fill(template, job_id), headers=owner_headers)
            assert r.status_code == 200, f"GET {template}: {r.status_code} {r.text}"

    # Nothing the stranger did changed the job.
    job = (await api.client.get(f"/v1/productions/{job_id}", headers=owner_headers)).json()
    assert job["status"] == "completed"


async def test_lists_show_only_your_jobs_and_admins_see_all(api: Api) -> None:
    _, alice = await api.account()
    _, bob = await api.account()
    _, admin = await api.account("admin")
    a = await api.submit(alice, prompt="alice's production")
    b = await api.submit(bob, prompt="bob's production")

    def ids(r: Any) -> set[str]:
        return {j["id"] for j in r.json()["items"]}

    assert ids(await api.client.get("/v1/productions", headers=alice)) == {a["id"]}
    assert ids(await api.client.get("/v1/productions", headers=bob)) == {b["id"]}
    assert ids(await api.client.get("/v1/productions", headers=admin)) == {a["id"], b["id"]}

    r = await api.client.get(f"/v1/productions/{a['id']}", headers=admin)
    assert r.status_code == 200
    r = await api.client.post(f"/v1/productions/{a['id']}/cancel", headers=admin)
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"


async def test_every_route_but_login_needs_a_token(api: Api) -> None:
    _, headers = await api.account()
    job = await api.submit(headers)
    checked = 0
    for method, template, body in _operations(api):
        if not template.startswith("/v1/") or template in PUBLIC:
            continue
        r = await api.client.request(method, _fill(template, job["id"]), json=body)
        assert r.status_code == 401, f"{method} {template} answered {r.status_code} unauthenticated"
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"
        checked += 1
    assert checked >= 14


async def test_every_operation_is_documented(api: Api) -> None:
    """Summaries, tags and the error shape on every route (not the default 422)."""
    spec = api.app.openapi()
    assert spec["info"]["title"] == "AIPROD API"
    for path, item in spec["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary"), where
            assert op.get("tags"), where
            for status, resp in op["responses"].items():
                if status.startswith(("4", "5")):
                    ref = resp["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), f"{where} {status}"
            if path.startswith("/v1/") and path not in PUBLIC:
                assert "401" in op["responses"], where
    assert "HTTPValidationError" not in spec.get("components", {}).get("schemas", {})
