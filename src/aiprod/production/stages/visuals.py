"""Stage 3, visuals: each scene becomes a clip of exactly its frame count.

Holds the VisualRenderer Protocol that backends implement, and the stage's body
(`run`, called by the Pipeline): render each scene through the stage cache,
keyed by what shows on screen, so that a changed scene re-renders alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiprod.production.cache import file_digest
from aiprod.production.models import RenderSpec, Scene, Storyboard, VisualStyle
from aiprod.production.stages.base import Backend, ProgressFn
from aiprod.production.stages.context import StageContext


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


def clip_path(ctx: StageContext, index: int) -> Path:
    """Where the clip of scene `index` lies."""
    return ctx.work / "clips" / f"scene_{index:03d}.mp4"


def load(ctx: StageContext, storyboard: Storyboard) -> list[Path]:
    """The clips an earlier run rendered, one per scene."""
    return [clip_path(ctx, i) for i in range(len(storyboard.scenes))]


def run(ctx: StageContext, storyboard: Storyboard) -> list[Path]:
    """Render every scene's clip (or take it from the cache)."""
    ctx.emit("visuals", "started", 0.0)
    renderer: VisualRenderer = ctx.backend("visuals")
    clips: list[Path] = []
    n = len(storyboard.scenes)
    hits = 0
    for i, scene in enumerate(storyboard.scenes):
        scene_ctx = SceneContext(
            spec=ctx.spec,
            style=scene.style or ctx.request.style,
            title=storyboard.title,
            scene_count=n,
            seed=storyboard.seed,
        )
        clip = clip_path(ctx, i)
        inputs = {
            # The narration too: its words choose the look (motion's vocabulary).
            "scene": scene.model_dump(mode="json", exclude={"voice", "media"}),
            "media": (
                {"sha256": file_digest(scene.media.path), "suffix": scene.media.path.suffix}
                if scene.media
                else None
            ),
            "spec": ctx.spec,
            "style": scene_ctx.style,
            "seed": scene_ctx.seed,
            # Only cards show the production's title.
            "title": scene_ctx.title if scene.kind != "content" else None,
        }

        def make(
            tmp: Path,
            scene: Any = scene,
            scene_ctx: SceneContext = scene_ctx,
            i: int = i,
            name: str = clip.name,
        ) -> None:
            def progress(f: float) -> None:
                ctx.emit("visuals", "progress", (i + f) / n)

            renderer.render(scene, scene_ctx, tmp / name, progress)

        hits += ctx.cached("visuals", renderer, inputs, [clip], make)
        clips.append(clip)
        ctx.emit("visuals", "progress", (i + 1) / n)
    ctx.finish("visuals", units=n, cached=hits)
    return clips
