"""A data-protection request: an admin exports everything of a user, then
erases it; nothing of the user is left in storage or in any table but the
audit log, which records both steps and still verifies."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile

from sqlalchemy import func, select

from aiprod.events.models import StreamTicket, WebhookDelivery, WebhookEndpoint
from aiprod.identity.audit import AuditFilter
from aiprod.identity.models import ApiKey, AuthSession, ExternalIdentity, RefreshToken, User
from aiprod.jobs.models import Checkpoint, Job, JobEvent, MediaFile
from tests.api.conftest import Api
from tests.api.media_files import image
from tests.api.test_deletion import add_delivery, stored


async def _count(api: Api, column: object, value: uuid.UUID) -> int:
    async with api.db.session() as s:
        table = column.class_  # type: ignore[attr-defined]
        q = select(func.count()).select_from(table).where(column == value)  # type: ignore[operator]
        return int((await s.execute(q)).scalar_one())


async def test_export_then_erase_a_user(api: Api) -> None:
    alice, headers = await api.account()
    _, bob_headers = await api.account()
    admin, admin_headers = await api.account("admin")

    # Alice's things: an upload, two productions (one finished), an API key, a webhook.
    picture = image("PNG")
    r = await api.client.post(
        "/v1/media", files={"file": ("bee.png", picture, "image/png")}, headers=headers
    )
    assert r.status_code == 201, r.text
    media_id = r.json()["id"]
    done, queued = await api.submit(headers), await api.submit(headers, title="later")
    await api.complete(done["id"], {"video.mp4": b"alice's video", "poster.jpg": b"poster"})
    await add_delivery(api, alice.id, uuid.UUID(done["id"]))
    r = await api.client.post("/v1/api-keys", json={"name": "ci"}, headers=headers)
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    bobs = await api.submit(bob_headers)

    # --- the export
    url = f"/v1/admin/users/{alice.id}/export"
    assert (await api.client.get(url, headers=headers)).status_code == 403
    r = await api.client.get(url, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == f'attachment; filename="aiprod-user-{alice.id}.zip"'
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert z.testzip() is None
        names = set(z.namelist())
        doc = json.loads(z.read("user.json"))
        assert doc["user"]["email"] == alice.email and "password_hash" not in doc["user"]
        assert [k["name"] for k in doc["api_keys"]] == ["ci"]
        assert secret not in r.content.decode("latin-1")  # no secret, no digest
        assert len(doc["webhooks"]) == 1 and "secret" not in doc["webhooks"][0]
        assert doc["sessions"]  # her login
        (m,) = doc["media"]
        assert m["id"] == media_id and z.read(m["archived_as"]) == picture
        folders = {p["id"]: p["folder"] for p in doc["productions"]}
        assert set(folders) == {done["id"], queued["id"]}
        assert z.read(folders[done["id"]] + "video.mp4") == b"alice's video"
        assert f"{folders[queued['id']]}production.json" in names
        assert not any(bobs["id"] in n for n in names)
        lines = z.read("SHA256SUMS").decode().splitlines()
        sums = {name: digest for digest, name in (line.split("  ", 1) for line in lines)}
        assert set(sums) == names - {"SHA256SUMS"}
        for name, digest in sums.items():
            assert hashlib.sha256(z.read(name)).hexdigest() == digest, name
    resumed = await api.client.get(
        url,
        headers={**admin_headers, "Range": "bytes=100-", "If-Range": r.headers["etag"]},
    )
    assert resumed.status_code == 206 and resumed.content == r.content[100:]

    # --- the erasure
    erase = f"/v1/admin/users/{alice.id}/erase"
    assert (await api.client.post(erase, headers=bob_headers)).status_code == 403
    own = await api.client.post(f"/v1/admin/users/{admin.id}/erase", headers=admin_headers)
    assert own.status_code == 409 and own.json()["error"]["code"] == "cannot_erase_self"
    r = await api.client.post(erase, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "user_id": str(alice.id),
        "productions": 2,
        "media": 1,
        "api_keys": 1,
        "sessions": 1,
        "webhooks": 1,
        "cache_entries": 0,
    }
    missing = await api.client.post(f"/v1/admin/users/{uuid.uuid4()}/erase", headers=admin_headers)
    assert missing.status_code == 404

    # Storage holds only Bob's things; no table names Alice or her productions.
    assert await stored(api, f"media/{alice.id}/") == []
    for job in (done, queued):
        assert await stored(api, f"jobs/{job['id']}/") == []
    assert await stored(api, "deletions/") == []
    for column in (
        User.id,
        ApiKey.user_id,
        AuthSession.user_id,
        RefreshToken.user_id,
        ExternalIdentity.user_id,
        WebhookEndpoint.owner_id,
        StreamTicket.user_id,
        MediaFile.owner_id,
        Job.owner_id,
    ):
        assert await _count(api, column, alice.id) == 0, column
    for job in (done, queued):
        jid = uuid.UUID(job["id"])
        for column in (JobEvent.job_id, Checkpoint.job_id, WebhookDelivery.job_id):
            assert await _count(api, column, jid) == 0, column
    assert (await api.client.get(f"/v1/productions/{bobs['id']}", headers=bob_headers)).is_success

    # Her credentials are dead; the audit log records it all and verifies.
    assert (await api.client.get("/v1/me", headers=headers)).status_code == 401
    key_auth = {"Authorization": f"Bearer {secret}"}
    assert (await api.client.get("/v1/productions", headers=key_auth)).status_code == 401
    events = await api.identity.audit.query(AuditFilter(subject_id=str(alice.id)), 50)
    kinds = {e.event for e in events}
    assert {"user.exported", "user.disabled", "user.erased"} <= kinds
    assert (await api.identity.audit.verify()).ok
