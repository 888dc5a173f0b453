"""The provenance files a finished production leaves: cost.json and manifest.json.

``cost.json`` sets the estimate made before the run beside what each stage
actually spent (wall and CPU seconds, cache hits); ``manifest.json`` lists
every file of the output folder with its size, hash and the backend that made
it, plus the user's own media and their licenses.  Written by the Pipeline
once the qa stage has checked the video, from the StageContext the stages
filled; kept apart from the stages because they describe the run as a whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from aiprod import __version__
from aiprod.production.cache import file_digest
from aiprod.production.cost import CostEstimate, PriceTable
from aiprod.production.models import ProductionRequest, QAReport, Storyboard, UserMedia
from aiprod.production.providers.client import redact
from aiprod.production.providers.metering import Charge
from aiprod.production.stages.context import StageContext, write_json
from aiprod.production.stages.visuals import read_sources

STAGE_OF: dict[str, str] = {
    "narration": "narrate",
    "clips": "visuals",
    "credits.txt": "visuals",
    "music.wav": "music",
    "video.mp4": "montage",
    "poster.jpg": "montage",
    "subtitles.srt": "montage",
    "subtitles.vtt": "montage",
    "thumbs": "montage",
    "storyboard.json": "plan",
    "qa.json": "qa",
}
"""The stage that made each top-level entry of the output folder (or of work/)."""


def write_cost(
    ctx: StageContext,
    estimate: CostEstimate,
    prices: PriceTable,
    *,
    wall: dict[str, float],
    cpu: dict[str, float],
    fast_track: bool,
    charges: Sequence[Charge] = (),
) -> None:
    """Write cost.json: the estimate, and per stage the seconds spent and their cost.

    A stage priced per CPU second (built-in backends, and free services such
    as stock search) is charged the CPU seconds it used; calls to paid services
    are charged what the service reported using (tokens, characters, images) at
    the price table's unit price, listed call by call under ``charges``.  A
    unit served from the stage cache was not paid again and has no charge."""
    paid: dict[str, float] = {}
    for c in charges:
        paid[c.stage] = paid.get(c.stage, 0.0) + c.cost
    actual: list[dict[str, Any]] = []
    for s in estimate.stages:
        made_by = ctx.made_by.get(s.stage, {}).get("backend", s.backend)
        spent = paid.get(s.stage, 0.0)
        if s.unit == "cpu_second":  # built-in, or a free service (stock search)
            spent += cpu.get(s.stage, 0.0) * prices.unit_price(made_by, "cpu_second")
        actual.append(
            {
                "stage": s.stage,
                "backend": made_by,
                "wall_seconds": wall.get(s.stage, 0.0),
                "cpu_seconds": cpu.get(s.stage, 0.0),
                "cost": round(spent, 8),
                "cache": ctx.stats.get(s.stage, {}),
            }
        )
    write_json(
        ctx.outdir / "cost.json",
        {
            "estimate": estimate.model_dump(mode="json"),
            "actual": actual,
            "actual_total": round(sum(a["cost"] for a in actual), 8),
            "charges": [c.as_json() for c in charges],
            "budget": ctx.request.budget,
            "fast_track": fast_track,
        },
    )


def write_manifest(ctx: StageContext, storyboard: Storyboard, report: QAReport) -> None:
    """List every file of the output with its hash and the backend that made it,
    the user's media, and the provider assets the scenes show (``sources``)."""
    outdir = ctx.outdir
    assets = []
    for path in sorted(outdir.rglob("*")):
        rel = path.relative_to(outdir)
        if not path.is_file() or rel.name == "manifest.json" or rel.parts[:2] == ("work", "tmp"):
            continue
        top = rel.parts[1] if rel.parts[0] == "work" and len(rel.parts) > 1 else rel.parts[0]
        stage = STAGE_OF.get(top)
        assets.append(
            {
                "path": rel.as_posix(),
                "bytes": path.stat().st_size,
                "sha256": file_digest(path),
                "stage": stage,
                "made_by": ctx.made_by.get(stage) if stage else {"backend": "aiprod"},
            }
        )
    media = [
        {
            "scene": s.index,
            "source": _source(s.media),
            "sha256": file_digest(s.media.path),
            "license": s.media.license,
        }
        for s in storyboard.scenes
        if s.media is not None
    ]
    # The provider assets the scenes show (stages/visuals.py): their authors,
    # pages and licences.  Redacted once more: no key may reach a record.
    sources = [
        {"scene": index, **json.loads(redact(source.model_dump_json()))}
        for index, source in read_sources(ctx, storyboard)
    ]
    write_json(
        outdir / "manifest.json",
        {
            "aiprod": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "title": storyboard.title,
            "request": public_request(ctx.request),
            "spec": ctx.spec.model_dump(mode="json"),
            "backends": ctx.made_by,
            "qa_passed": report.passed,
            "assets": assets,
            "user_media": media,
            "sources": sources,
        },
    )


def _source(media: UserMedia) -> str:
    """An upload by its id (the worker's scratch path is nobody's business), a
    local file (CLI) by its path."""
    return f"upload:{media.media_id}" if media.media_id is not None else str(media.path)


def public_request(request: ProductionRequest) -> dict[str, Any]:
    """The request as the manifest records it: uploads by id, without the
    scratch paths the worker filled in for the engine."""
    data = request.model_dump(mode="json")
    for item in data.get("media", []):
        if item.get("media_id") is not None:
            item["path"] = None
    if data.get("music_media_id") is not None:
        data["music_file"] = None
    return data
