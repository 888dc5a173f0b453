"""Identity tests: the real app on SQLite and PostgreSQL (the ``api`` fixtures
from tests/api, databases from tests/conftest.py), plus helpers for tokens,
API keys and the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from aiprod.identity.models import AuditEvent
from tests.api.conftest import (  # noqa: F401  (fixtures, and names the tests import)
    PASSWORD,
    Api,
    api,
    api_settings,
    running,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_key(app: Api, headers: dict[str, str], **body: Any) -> tuple[dict[str, Any], str]:
    payload = {"name": "test key", **body}
    r = await app.client.post("/v1/api-keys", json=payload, headers=headers)
    assert r.status_code == 201, r.text
    data = r.json()
    return data["key"], data["secret"]


async def audit(app: Api, event: str | None = None) -> list[AuditEvent]:
    async with app.db.session() as s:
        q = select(AuditEvent).order_by(AuditEvent.seq)
        if event is not None:
            q = q.where(AuditEvent.event == event)
        return list((await s.execute(q)).scalars())


async def me_status(app: Api, headers: dict[str, str]) -> int:
    return (await app.client.get("/v1/me", headers=headers)).status_code
