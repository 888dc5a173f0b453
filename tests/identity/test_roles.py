"""Roles and permissions: the matrix, on every route of the OpenAPI document.

Each documented ``/v1`` operation is called without credentials (401), and
with a fresh token of each role: a role the route's permission does not
allow must get 403; a role it allows must get past authorisation (anything
but 401/403; 404 or 409 are about the sample data).  The expected permission
of every route this project owns is listed here, so a route whose guard
changes fails the test.  Routes of other modules are held to the permission
they declare.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import update

from aiprod.identity.deps import check_routes
from aiprod.identity.models import User
from aiprod.identity.permissions import PERMISSIONS, ROLES
from tests.api.test_access import SAMPLE_BODIES
from tests.identity.conftest import PASSWORD, Api, audit, bearer, make_key

AUTH = "authenticated"
SESSION = "authenticated (login session)"
PUBLIC = "public"

# (method, path) → what it needs.  Routes of this project only.
EXPECTED = {
    ("POST", "/v1/auth/login"): PUBLIC,
    ("POST", "/v1/auth/refresh"): PUBLIC,
    ("POST", "/v1/auth/logout"): PUBLIC,
    ("POST", "/v1/auth/revoke"): AUTH,
    ("GET", "/v1/auth/sessions"): AUTH,
    ("POST", "/v1/auth/password"): SESSION,
    ("GET", "/v1/me"): AUTH,
    ("GET", "/v1/me/usage"): AUTH,
    ("GET", "/v1/api-keys"): SESSION,
    ("POST", "/v1/api-keys"): SESSION,
    ("GET", "/v1/api-keys/{key_id}"): SESSION,
    ("DELETE", "/v1/api-keys/{key_id}"): SESSION,
    ("POST", "/v1/api-keys/{key_id}/rotate"): SESSION,
    ("POST", "/v1/api-keys/{key_id}/claim"): SESSION,
    ("POST", "/v1/api-keys/revoke-all"): SESSION,
    ("GET", "/v1/admin/users"): "admin:users",
    ("GET", "/v1/admin/users/{user_id}"): "admin:users",
    ("PATCH", "/v1/admin/users/{user_id}"): "admin:users",
    ("POST", "/v1/admin/keys/rotate"): "admin:keys",
    ("GET", "/v1/admin/audit"): "admin:audit",
    ("GET", "/v1/admin/audit/verify"): "admin:audit",
    ("GET", "/v1/admin/users/{user_id}/quotas"): "admin:users",
    ("PUT", "/v1/admin/users/{user_id}/quotas"): "admin:users",
    ("POST", "/v1/productions"): "jobs:create",
    ("GET", "/v1/productions"): "jobs:read",
    ("GET", "/v1/productions/{production_id}"): "jobs:read",
    ("GET", "/v1/productions/{production_id}/events"): "jobs:read",
    ("GET", "/v1/productions/{production_id}/storyboard"): "jobs:read",
    ("PATCH", "/v1/productions/{production_id}/storyboard"): "jobs:update",
    ("POST", "/v1/productions/{production_id}/approve"): "jobs:approve",
    ("POST", "/v1/productions/{production_id}/cancel"): "jobs:update",
    ("POST", "/v1/productions/{production_id}/retry"): "jobs:update",
    ("POST", "/v1/productions/{production_id}/scenes/{index}/rerender"): "jobs:update",
    ("GET", "/v1/productions/{production_id}/artifacts"): "results:read",
    ("GET", "/v1/productions/{production_id}/artifacts/{name}"): "results:read",
    ("GET", "/v1/presets"): "jobs:read",
    ("POST", "/v1/cost-estimate"): "jobs:read",
    ("GET", "/v1/voices"): "jobs:read",
    ("GET", "/v1/voices/{voice_id}/preview"): "jobs:read",
    ("POST", "/v1/media"): "media:write",
    ("GET", "/v1/media"): "media:read",
    ("GET", "/v1/media/{media_id}"): "media:read",
    ("DELETE", "/v1/media/{media_id}"): "media:write",
    ("POST", "/v1/webhooks"): "webhooks:write",
    ("GET", "/v1/webhooks"): "webhooks:read",
    ("GET", "/v1/webhooks/{webhook_id}"): "webhooks:read",
    ("PATCH", "/v1/webhooks/{webhook_id}"): "webhooks:write",
    ("DELETE", "/v1/webhooks/{webhook_id}"): "webhooks:write",
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): "webhooks:write",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): "webhooks:read",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): "webhooks:read",
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): "webhooks:write",
}

BODIES: dict[str, Any] = {
    **SAMPLE_BODIES,
    "PasswordChange": {"current_password": PASSWORD, "new_password": PASSWORD},
    "ApiKeyCreate": {"name": "matrix"},
    "UserPatch": {"role": "viewer"},
}


def _allowed(need: str, role: str) -> bool | None:
    """True/False per the matrix; None: a custom guard this test cannot judge."""
    if need in (AUTH, SESSION):
        return True
    if need in PERMISSIONS["admin"]:
        return need in PERMISSIONS[role]
    return None


def _operations(api: Api) -> list[tuple[str, str, Any, str | None]]:
    ops = []
    for path, item in api.app.openapi()["paths"].items():
        for method, op in item.items():
            body = None
            # Multipart uploads (POST /v1/media) are sent without a body: their
            # route answers 401/403 before reading one, 415 after.
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                schema = ref.rsplit("/", 1)[-1]
                assert schema in BODIES, f"{method} {path}: add a sample {schema} body"
                body = BODIES[schema]
            ops.append((method.upper(), path, body, op.get("x-aiprod-permission")))
    return ops


def test_every_v1_route_declares_what_it_needs(api: Api) -> None:
    ops = _operations(api)
    declared = {(m, p): need for m, p, _, need in ops if p.startswith("/v1/")}
    assert all(need for need in declared.values()), [k for k, v in declared.items() if not v]
    for route, need in EXPECTED.items():
        assert declared.get(route) == need, f"{route}: declares {declared.get(route)}, want {need}"


def test_an_undeclared_route_refuses_to_start() -> None:
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/forgotten", summary="x")
    async def forgotten() -> dict[str, str]:
        return {}

    app.include_router(router)
    with pytest.raises(RuntimeError, match=r"GET /v1/forgotten"):
        check_routes(app)


async def test_the_permission_matrix_on_every_route(api: Api) -> None:
    users = {role: await api.user(role) for role in ROLES}
    owner_headers = await api.headers(users["user"])
    job = await api.submit(owner_headers)
    target = await api.user("user")
    values = {
        "production_id": job["id"],
        "index": "0",
        "name": "video.mp4",
        "user_id": str(target.id),
        "key_id": str(uuid.uuid4()),
    }

    def fill(template: str) -> str:
        def value(m: re.Match[str]) -> str:
            return values.get(m.group(1), str(uuid.uuid4()))

        return re.sub(r"\{(\w+)\}", value, template)

    checked = {"401": 0, "403": 0, "allowed": 0}
    for method, template, body, need in _operations(api):
        if not template.startswith("/v1/") or need == PUBLIC:
            continue
        assert need is not None
        where = f"{method} {template} ({need})"
        r = await api.client.request(method, fill(template), json=body)
        assert r.status_code == 401, f"{where} without credentials: {r.status_code}"
        checked["401"] += 1
        ours = (method, template) in EXPECTED
        for role in ROLES:
            allowed = _allowed(need, role)
            if allowed is None or (allowed and not ours):
                continue  # another module's side effects are its own tests' business
            tokens = await api.login(users[role].email)
            r = await api.client.request(
                method, fill(template), json=body, headers=bearer(tokens["access_token"])
            )
            if allowed:
                assert r.status_code not in (401, 403), f"{where} as {role}: {r.text}"
                checked["allowed"] += 1
            else:
                assert r.status_code == 403, f"{where} as {role}: {r.status_code} {r.text}"
                assert r.json()["error"]["code"] == "forbidden"
                checked["403"] += 1
    assert checked["401"] >= len(EXPECTED) - 3
    assert checked["403"] >= 30 and checked["allowed"] >= 60, checked
    # Every refusal is in the audit log.
    assert len(await audit(api, "permission.denied")) == checked["403"]


async def test_a_scoped_key_is_refused_everything_outside_its_scopes(api: Api) -> None:
    _, headers = await api.account()
    _, secret = await make_key(api, headers, scopes=["jobs:read"])
    refused = 0
    for method, template, body, need in _operations(api):
        if (method, template) not in EXPECTED or need in (PUBLIC, AUTH, "jobs:read"):
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: str(uuid.uuid4()) if "id" in m[1] else "0", template)
        r = await api.client.request(method, path, json=body, headers=bearer(secret))
        assert r.status_code == 403, f"{method} {template} with a jobs:read key: {r.status_code}"
        refused += 1
    assert refused >= 20


async def test_viewer_calling_a_write_route(api: Api) -> None:
    viewer, headers = await api.account("viewer")
    for method, path, body in (
        ("POST", "/v1/productions", {"prompt": "How honeybees turn nectar into honey"}),
        ("POST", f"/v1/productions/{uuid.uuid4()}/cancel", None),
        ("POST", f"/v1/productions/{uuid.uuid4()}/approve", None),
    ):
        r = await api.client.request(method, path, json=body, headers=headers)
        assert r.status_code == 403, path
        assert r.json()["error"]["details"]["needs"] in (
            "jobs:create",
            "jobs:update",
            "jobs:approve",
        )
    denied = await audit(api, "permission.denied")
    assert {e.actor_id for e in denied} == {viewer.id}
    assert [e.details["path"].split("/")[-1] for e in denied] == [
        "productions",
        "cancel",
        "approve",
    ]
    assert all(e.ip == "127.0.0.1" and e.request_id for e in denied)


async def test_a_user_reading_another_users_job(api: Api) -> None:
    _, alice = await api.account()
    _, bob = await api.account()
    job = await api.submit(alice)
    for path in ("", "/events", "/storyboard", "/artifacts"):
        r = await api.client.get(f"/v1/productions/{job['id']}{path}", headers=bob)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"


async def test_role_change_takes_effect_on_the_next_request(api: Api) -> None:
    user, headers = await api.account()
    _, admin = await api.account("admin")
    body = {"prompt": "How honeybees turn nectar into honey"}
    assert (await api.client.post("/v1/productions", json=body, headers=headers)).status_code == 202
    r = await api.client.patch(f"/v1/admin/users/{user.id}", json={"role": "viewer"}, headers=admin)
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    assert (await api.client.post("/v1/productions", json=body, headers=headers)).status_code == 403
    [event] = await audit(api, "user.role_changed")
    assert event.details == {"from": "user", "to": "viewer"} and event.subject_id == str(user.id)
    r = await api.client.patch(f"/v1/admin/users/{user.id}", json={"role": "admin"}, headers=admin)
    users = await api.client.get("/v1/admin/users", headers=headers)
    assert users.status_code == 200  # promoted: admin routes open on the next request


async def test_the_last_admin_cannot_be_removed(api: Api) -> None:
    me, admin = await api.account("admin")
    for change in ({"role": "user"}, {"is_active": False}):
        r = await api.client.patch(f"/v1/admin/users/{me.id}", json=change, headers=admin)
        assert r.status_code == 409, change
        assert r.json()["error"]["code"] == "last_admin"
    other = await api.user("admin")
    r = await api.client.patch(f"/v1/admin/users/{other.id}", json={"role": "user"}, headers=admin)
    assert r.status_code == 200
    other2 = await api.user("admin")
    r = await api.client.patch(f"/v1/admin/users/{me.id}", json={"role": "user"}, headers=admin)
    assert r.status_code == 200  # another admin remains
    # A disabled admin does not count.
    async with api.db.transaction() as s:
        await s.execute(update(User).where(User.id == other2.id).values(is_active=False))
    h2 = await api.headers(await api.user("admin"))
    r = await api.client.patch(f"/v1/admin/users/{other2.id}", json={"is_active": True}, headers=h2)
    assert r.status_code == 200


async def test_role_changes_need_admin_roles(api: Api) -> None:
    _, admin = await api.account("admin")
    target = await api.user()
    _, secret = await make_key(api, admin, scopes=["admin:users"])
    url = f"/v1/admin/users/{target.id}"
    r = await api.client.patch(url, json={"role": "admin"}, headers=bearer(secret))
    assert r.status_code == 403 and "admin:roles" in r.json()["error"]["message"]
    r = await api.client.patch(url, json={"is_active": False}, headers=bearer(secret))
    assert r.status_code == 200
    r = await api.client.patch(url, json={}, headers=admin)
    assert r.status_code == 422
