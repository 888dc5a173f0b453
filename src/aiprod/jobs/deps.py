"""FastAPI dependencies for the services the app's lifespan builds.

Handlers declare what they use (``jobs: Jobs``) instead of reaching into
``request.app.state``, so their signatures say what they touch and a test can
override one service with ``app.dependency_overrides``.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Query, Request

from aiprod.jobs.artifacts import Artifacts
from aiprod.jobs.service import JobService
from aiprod.jobs.uploads.service import MediaService
from aiprod.settings import Settings
from aiprod.storage.store import Storage


def job_service(request: Request) -> JobService:
    return cast(JobService, request.app.state.jobs)


def app_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def artifact_storage(request: Request) -> Storage:
    return cast(Storage, request.app.state.storage)


def artifact_service(
    jobs: Annotated[JobService, Depends(job_service)],
    storage: Annotated[Storage, Depends(artifact_storage)],
) -> Artifacts:
    return Artifacts(jobs, storage)


def media_service(request: Request) -> MediaService:
    state = request.app.state
    return MediaService(state.db, state.storage, state.settings)


def root_path(request: Request) -> str:
    """The prefix the app is mounted under (links in answers start with it)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


Jobs = Annotated[JobService, Depends(job_service)]
SettingsDep = Annotated[Settings, Depends(app_settings)]
StorageDep = Annotated[Storage, Depends(artifact_storage)]
ArtifactsDep = Annotated[Artifacts, Depends(artifact_service)]
RootPath = Annotated[str, Depends(root_path)]
Media = Annotated[MediaService, Depends(media_service)]

__all__ = [
    "ArtifactsDep",
    "Jobs",
    "Media",
    "RootPath",
    "SettingsDep",
    "StorageDep",
    "app_settings",
    "artifact_service",
    "artifact_storage",
    "job_service",
    "media_service",
    "root_path",
]


PAGE_CAP = 1000  # what `limit` may ask; the server's page size caps it further
PageSize = Annotated[
    int,
    Query(
        ge=1,
        le=PAGE_CAP,
        description="Page size; values above the server's maximum "
        "(`AIPROD_PAGE_SIZE_MAX`) are capped.",
    ),
]
PageCursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
]
