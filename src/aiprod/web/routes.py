"""Pages for browsers: the studio at ``/`` (its files under ``/static/``) and
the API docs at ``/docs`` (Swagger UI) and ``/redoc``.

Everything is served from files in the package: no CDN, no web font, so the
pages work on a machine without internet.  Each page brings its own Content
Security Policy, with no inline script allowed: the studio's is strict
(scripts, styles, pictures and media from this origin only); the docs' allow
inline styles, which Swagger UI and ReDoc set as they render, and ReDoc's
search worker from a ``blob:`` URL.  The edge middleware adds the rest of the
security headers.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from aiprod.errors import NotFound

STATIC = Path(__file__).parent / "static"
DOCS = Path(__file__).parent / "docs"

STUDIO_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; font-src 'self'; connect-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'; manifest-src 'self'"
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
REVALIDATE = "no-cache"
"""Kept by browsers, but checked (ETag) before each use: a new release shows at once."""

router = APIRouter(include_in_schema=False)


def _vendor(name: str) -> Path:
    """A file of the Swagger UI and ReDoc bundles that `fastapi-offline` ships."""
    return Path(str(files("fastapi_offline") / "static" / name))


DOCS_ASSETS: dict[str, Path] = {
    "swagger-ui-bundle.js": _vendor("swagger-ui-bundle.js"),
    "swagger-ui.css": _vendor("swagger-ui.css"),
    "redoc.standalone.js": _vendor("redoc.standalone.js"),
    "favicon.png": _vendor("favicon.png"),
    "swagger-init.js": DOCS / "swagger-init.js",
    "redoc-init.js": DOCS / "redoc-init.js",
    "redoc.css": DOCS / "redoc.css",
}


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _answer(request: Request, body: bytes, etag: str, media_type: str, **headers: str) -> Response:
    """A shipped file, revalidated: 304 when the browser's copy is current."""
    headers = {"ETag": etag, "Cache-Control": REVALIDATE, **headers}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@cache
def _page(path: Path) -> tuple[bytes, str]:
    body = path.read_bytes()
    return body, _etag(body)


def _html(request: Request, path: Path, csp: str) -> Response:
    """An HTML page with its own policy."""
    body, etag = _page(path)
    return _answer(
        request, body, etag, "text/html; charset=utf-8", **{"Content-Security-Policy": csp}
    )


@router.get("/")
async def studio(request: Request) -> Response:
    """The studio: one page; its views are routed in the browser (``#/…``)."""
    return _html(request, STATIC / "index.html", STUDIO_CSP)


@router.get("/docs")
async def swagger(request: Request) -> Response:
    return _html(request, DOCS / "swagger.html", DOCS_CSP)


@router.get("/redoc")
async def redoc(request: Request) -> Response:
    return _html(request, DOCS / "redoc.html", DOCS_CSP)


REWRITES: dict[str, tuple[tuple[bytes, bytes], ...]] = {
    # ReDoc's "API docs by Redocly" footer shows a logo from Redocly's CDN,
    # unconditionally: point it at the shipped icon so nothing leaves this origin.
    "redoc.standalone.js": ((b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"favicon.png"),),
}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@cache
def _asset(name: str) -> tuple[bytes, str]:
    body = DOCS_ASSETS[name].read_bytes()
    for old, new in REWRITES.get(name, ()):
        body = body.replace(old, b"/docs-assets/" + new)
    return body, _etag(body)


@router.get("/docs-assets/{name}")
async def docs_asset(request: Request, name: str) -> Response:
    if name not in DOCS_ASSETS:
        raise NotFound(f"no docs asset {name!r}")
    body, etag = _asset(name)
    return _answer(request, body, etag, _TYPES[Path(name).suffix])


class _StudioFiles(StaticFiles):
    """The studio's files, revalidated before each use (no build step gives
    them hashed names yet)."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = REVALIDATE
        return response

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except StarletteHTTPException as exc:  # 404, 405: in the one error shape
            if exc.status_code == 404:
                raise NotFound(f"no studio file {path!r}") from None
            raise


def install(app: FastAPI) -> None:
    """Serve the studio, its files and the docs pages."""
    app.include_router(router)
    app.mount("/static", _StudioFiles(directory=STATIC, check_dir=False), name="studio-static")
