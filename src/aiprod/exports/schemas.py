"""The documented shape of a production's JSON export (format 1).

:class:`ProductionExport` is published in the OpenAPI document (the 200
answer of ``GET /v1/productions/{id}/export?format=json``) and as
``docs/schemas/production-export.schema.json`` (``python -m
aiprod.exports.schemas`` writes it); tests validate real exports against it.
The sections the engine writes (``request``, ``storyboard``, ``qa``,
``cost``, ``manifest``) are the stored documents unchanged; ``cost`` and
``manifest`` name their known fields and allow others, so that a newer
engine's extra fields still validate.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aiprod.jobs.schemas import JobError, JobStatus
from aiprod.production.cost import CostEstimate
from aiprod.production.models import ProductionRequest, QAReport, Storyboard

FORMAT: Literal["aiprod.production-export"] = "aiprod.production-export"
VERSION: Literal[1] = 1


class ExportedJob(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    status: JobStatus
    stage: str | None
    progress: int = Field(ge=0, le=100)
    title: str | None
    fast_track: bool
    review: bool
    approved: bool
    attempts: int
    failed_stage: str | None
    error: JobError | None
    estimate: CostEstimate
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class ExportedEvent(BaseModel):
    seq: int = Field(description="Position in the job's log, from 1, without gaps.")
    type: str
    created_at: datetime
    payload: dict[str, Any]


class ExportedFile(BaseModel):
    name: str = Field(description="The artifact's name, as `GET …/artifacts` lists it.")
    stage: str = Field(description="The stage whose checkpoint recorded it.")
    bytes: int = Field(ge=0)
    sha256: str = Field(description="SHA-256 recorded when the worker stored it.")
    content_type: str
    archived_as: str | None = Field(
        description="Its path inside the ZIP export; null for intermediates (`work/…`) and "
        "for a file no longer in storage."
    )


class StageSpend(BaseModel):
    model_config = ConfigDict(extra="allow")

    stage: str
    backend: str
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    cost: float = Field(0.0, description="USD.")
    cache: dict[str, int] = Field(default_factory=dict, description="Cache hits and misses.")


class CostReport(BaseModel):
    """cost.json: the estimate made before the run beside what each stage spent."""

    model_config = ConfigDict(extra="allow")

    estimate: CostEstimate | None = None
    actual: list[StageSpend] = Field(default_factory=list)
    actual_total: float = 0.0
    charges: list[dict[str, Any]] = Field(default_factory=list)
    budget: float | None = None
    fast_track: bool = False


class ManifestAsset(BaseModel):
    model_config = ConfigDict(extra="allow")

    path: str
    bytes: int
    sha256: str
    stage: str | None = None
    made_by: dict[str, Any] | None = None


class Manifest(BaseModel):
    """manifest.json: every output file with its hash and the backend that made it."""

    model_config = ConfigDict(extra="allow")

    aiprod: str = Field("", description="The version that made the production.")
    created: str = ""
    title: str = ""
    request: dict[str, Any] = Field(default_factory=dict)
    spec: dict[str, Any] = Field(default_factory=dict)
    backends: dict[str, dict[str, Any]] = Field(default_factory=dict)
    qa_passed: bool = False
    assets: list[ManifestAsset] = Field(default_factory=list)
    user_media: list[dict[str, Any]] = Field(default_factory=list)
    sources: list[dict[str, Any]] = Field(default_factory=list)


class ProductionExport(BaseModel):
    """Everything about one production as one JSON document."""

    format: Literal["aiprod.production-export"] = FORMAT
    version: Literal[1] = VERSION
    as_of: datetime = Field(
        description="When the production last changed: the export shows it as of then, and "
        "the same production always exports to the same bytes."
    )
    job: ExportedJob
    request: ProductionRequest = Field(description="The request as submitted.")
    storyboard: Storyboard | None = Field(description="The current plan (null before planning).")
    qa: QAReport | None = Field(description="The QA report of the last render.")
    cost: CostReport | None = Field(description="cost.json (null until the production finished).")
    manifest: Manifest | None = Field(description="manifest.json (null until it finished).")
    events: list[ExportedEvent] = Field(description="The whole event log, in order.")
    files: list[ExportedFile] = Field(description="Every artifact its checkpoints record.")


def schema_json() -> str:
    """The JSON Schema (2020-12) of the JSON export, as published in docs/schemas/.

    Backend names there are any string: the registry grows with plugins and
    providers, and ``/openapi.json`` lists the ones this server has."""
    schema = ProductionExport.model_json_schema(mode="serialization")
    backends = schema["$defs"]["ProductionRequest"]["properties"]["backends"]["properties"]
    for stage in backends:
        backends[stage] = {"type": "string"}
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


__all__ = [
    "FORMAT",
    "VERSION",
    "CostReport",
    "ExportedEvent",
    "ExportedFile",
    "ExportedJob",
    "Manifest",
    "ProductionExport",
    "schema_json",
]


if __name__ == "__main__":  # pragma: no cover
    print(schema_json(), end="")
