"""Every answer carries the hardening headers: JSON, errors, 500s, HTML pages,
files and streams; HSTS only over https (directly or via a trusted proxy)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, StreamingResponse

from aiprod.api.app import create_app
from aiprod.settings import Settings
from aiprod.web.routes import DOCS_CSP, STUDIO_CSP

COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
NO_DOCUMENT = "default-src 'none'; frame-ancestors 'none'; sandbox"
HSTS = "max-age=63072000; includeSubDomains; preload"


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    app = create_app(
        Settings(data_dir=tmp_path / "data", trusted_proxies=["127.0.0.1"]), embedded_worker=False
    )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/file.csv")
    async def file() -> PlainTextResponse:
        return PlainTextResponse("a,b\r\n", media_type="text/csv")

    @app.get("/poster.jpg")
    async def poster() -> PlainTextResponse:
        return PlainTextResponse("\xff", media_type="image/jpeg")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def events():  # type: ignore[no-untyped-def]
            yield b"data: 1\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


async def _get(
    app: FastAPI, path: str, base: str = "http://test", **headers: str
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize(
    ("path", "status", "csp"),
    [
        ("/health/live", 200, NO_DOCUMENT),  # JSON
        ("/v1/me", 401, NO_DOCUMENT),  # an error
        ("/no/such/path", 404, NO_DOCUMENT),
        ("/boom", 500, NO_DOCUMENT),
        ("/file.csv", 200, NO_DOCUMENT),  # a download
        ("/stream", 200, NO_DOCUMENT),  # an event stream
        ("/poster.jpg", 200, "frame-ancestors 'none'; sandbox"),  # media: the viewer loads it
        # The pages bring their own policies, with no inline script.
        ("/", 200, STUDIO_CSP),
        ("/docs", 200, DOCS_CSP),
        ("/redoc", 200, DOCS_CSP),
        ("/docs-assets/redoc.standalone.js", 200, NO_DOCUMENT),
        ("/static/index.html", 200, NO_DOCUMENT),  # any other HTML runs nothing
        ("/static/no-such-file.js", 404, NO_DOCUMENT),
    ],
)
async def test_every_answer_kind_carries_the_full_set(
    app: FastAPI, path: str, status: int, csp: str
) -> None:
    r = await _get(app, path)
    assert r.status_code == status
    for name, value in COMMON.items():
        assert r.headers[name] == value, name
    assert "camera=()" in r.headers["permissions-policy"]
    assert r.headers["content-security-policy"] == csp
    assert "strict-transport-security" not in r.headers  # plain http
    assert r.headers["x-request-id"]


async def test_hsts_over_https_directly_or_behind_a_trusted_proxy(app: FastAPI) -> None:
    assert (await _get(app, "/health/live", "https://test")).headers[
        "strict-transport-security"
    ] == HSTS
    proxied = await _get(app, "/v1/me", **{"x-forwarded-proto": "https"})
    assert proxied.headers["strict-transport-security"] == HSTS


async def test_hsts_can_be_turned_off_and_a_bad_value_refuses_to_start(tmp_path: Path) -> None:
    off = create_app(Settings(data_dir=tmp_path / "d", hsts=""), embedded_worker=False)
    assert "strict-transport-security" not in (await _get(off, "/health/live", "https://t")).headers
    with pytest.raises(ValueError, match="hsts"):
        Settings(data_dir=tmp_path / "d", hsts="max-age=1; evil")


async def test_the_pages_are_revalidated_with_their_etag(app: FastAPI) -> None:
    for path in ("/", "/docs", "/docs-assets/redoc.standalone.js"):
        first = await _get(app, path)
        assert first.headers["cache-control"] == "no-cache"
        again = await _get(app, path, **{"if-none-match": first.headers["etag"]})
        assert again.status_code == 304 and not again.content
    # Nothing in the served ReDoc points outside this origin for its logo.
    redoc = (await _get(app, "/docs-assets/redoc.standalone.js")).content
    assert b"cdn.redoc.ly" not in redoc
