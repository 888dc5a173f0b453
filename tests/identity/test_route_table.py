"""The permission check reads the routers' own routes (cheap) instead of
FastAPI's effective route contexts (rebuilt for every app); both must give
the same table, and an include with dependencies falls back to FastAPI's."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi import routing as fastapi_routing
from fastapi.routing import APIRoute

from aiprod.api.app import create_app
from aiprod.identity import deps
from aiprod.settings import Settings


def _effective(app: FastAPI) -> list[tuple[str, tuple[str, ...], str | None]]:
    return sorted(
        (
            str(c.path),
            tuple(sorted(c.methods or ())),
            deps.route_permission(
                deps.RouteInfo(
                    str(c.path), frozenset(c.methods or ()), c.dependant, c.openapi_extra
                )
            ),
        )
        for c in fastapi_routing.iter_route_contexts(app.routes)
        if isinstance(c.original_route, APIRoute)
    )


def _fast(app: FastAPI) -> list[tuple[str, tuple[str, ...], str | None]]:
    return sorted(
        (r.path, tuple(sorted(r.methods)), deps.route_permission(r)) for r in deps.api_routes(app)
    )


def test_the_app_route_table_matches_fastapis(tmp_path: Path) -> None:
    app = create_app(Settings(_env_file=None, data_dir=tmp_path))
    table = _fast(app)
    assert len(table) > 40
    assert table == _effective(app)


def test_nested_prefixes_and_dependencies() -> None:
    inner = APIRouter(prefix="/inner")

    @inner.get("/x")
    async def x() -> None: ...

    outer = APIRouter(prefix="/v1")
    outer.include_router(inner, prefix="/more")
    app = FastAPI()
    app.include_router(outer)
    assert (
        [r.path for r in deps.api_routes(app)]
        == ["/v1/more/inner/x"]
        == [p for p, _, _ in _effective(app)]
    )
    calls: list[str] = []

    async def included_dependency() -> None:
        calls.append("x")

    guarded = FastAPI()
    guarded.include_router(outer, dependencies=[Depends(included_dependency)])
    assert deps._plain_routes(list(guarded.routes)) is None  # falls back to FastAPI's
    assert _fast(guarded) == _effective(guarded)
