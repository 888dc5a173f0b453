"""The job columns that filters and sorts read, derived from the stored documents.

A job keeps its request, estimate and storyboard as JSON; a filter on cost or
duration cannot use an index on a JSON path on both databases, so the values
searches need are copied into real, indexed columns of ``jobs``.  They are
derived here and only here, from whatever the row holds, so that the service
(on every write, through :mod:`aiprod.search.sync`), the migration's backfill
and the benchmark's loader agree.  Stored documents of older versions may not
validate against today's models: every value falls back to a plain reading.
"""

from __future__ import annotations

from typing import Any

from aiprod.production.models import Storyboard
from aiprod.production.presets import PRESETS
from aiprod.search.text import base_language

RESOLUTIONS = ("480p", "720p", "1080p")


def _number(value: Any, default: float = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number == number and abs(number) != float("inf") else default


def duration(
    request: dict[str, Any], storyboard: dict[str, Any] | None, estimate: dict[str, Any]
) -> float:
    """Seconds of video: the storyboard's timeline once planned, else what the
    estimate assumed (a script's reading time), else what was asked (or the
    preset's default length)."""
    if storyboard:
        try:
            return round(Storyboard.model_validate(storyboard).duration, 3)
        except ValueError:
            scenes = storyboard.get("scenes") or []
            total = sum(_number(s.get("duration")) for s in scenes if isinstance(s, dict))
            if total > 0:
                return round(total, 3)
    if _number(estimate.get("duration")) > 0:
        return round(_number(estimate["duration"]), 3)
    if request.get("duration") is not None:
        return round(_number(request["duration"]), 3)
    preset = PRESETS.get(str(request.get("preset")))
    return float(preset.default_duration) if preset else 0.0


def resolution(request: dict[str, Any], estimate: dict[str, Any]) -> str:
    """The resolution rendered: the estimate's (a budget may have lowered it),
    else the one asked for."""
    spec = estimate.get("spec") or {}
    try:
        label = f"{min(int(spec['width']), int(spec['height']))}p"
    except (KeyError, TypeError, ValueError):
        label = ""
    return label if label in RESOLUTIONS else str(request.get("resolution") or "")[:8]


def derive(
    request: dict[str, Any] | None,
    estimate: dict[str, Any] | None,
    storyboard: dict[str, Any] | None,
) -> dict[str, Any]:
    """The search columns of a job with these documents."""
    request = request or {}
    estimate = estimate or {}
    voice = request.get("voice")
    language = (storyboard or {}).get("language") or request.get("language") or "en"
    return {
        "cost": round(_number(estimate.get("total")), 8),
        "duration": duration(request, storyboard, estimate),
        "preset": str(request.get("preset") or "")[:32],
        "aspect": str(request.get("aspect") or "")[:8],
        "resolution": resolution(request, estimate),
        "language": base_language(str(language)) or "en",
        "voice": str(voice.get("name") or "")[:64] if isinstance(voice, dict) else "",
    }
