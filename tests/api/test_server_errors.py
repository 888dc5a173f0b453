"""An unexpected failure answers like every other error: the one JSON shape,
the request id and the hardening headers — and nothing of the exception."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from aiprod.api.app import create_app
from aiprod.settings import Settings


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    app = create_app(Settings(data_dir=tmp_path / "data"), embedded_worker=False)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail: postgresql://admin:hunter2@db/prod")

    return app


async def test_a_500_carries_request_id_and_security_headers(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/boom", headers={"X-Request-ID": "req-123"})
    assert r.status_code == 500
    assert r.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal server error",
            "details": {"request_id": "req-123"},
        }
    }
    assert r.headers["X-Request-ID"] == "req-123"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "hunter2" not in r.text


async def test_the_failure_is_logged_with_the_request_id(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/boom")
    request_id = r.headers["X-Request-ID"]
    assert len(request_id) == 32
    logged = [rec for rec in caplog.records if rec.name == "aiprod.api" and rec.exc_info]
    assert logged and request_id in logged[0].getMessage()
