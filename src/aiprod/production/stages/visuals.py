"""Stage 3, visuals: each scene becomes a clip of exactly its frame count."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiprod.production.models import RenderSpec, Scene, VisualStyle
from aiprod.production.stages.base import Backend, ProgressFn


@dataclass(frozen=True)
class SceneContext:
    spec: RenderSpec
    style: VisualStyle
    title: str
    scene_count: int
    seed: int


class VisualRenderer(Backend, Protocol):
    def render(self, scene: Scene, ctx: SceneContext, out: Path, progress: ProgressFn) -> None:
        """Write `out` (MP4, H.264 yuv420p, ctx.spec size and fps) holding exactly
        ``ctx.spec.frames(scene.duration)`` frames.  The clip is a mezzanine that the
        montage decodes, so it is encoded fast and near-lossless (see media.video)."""
        ...
