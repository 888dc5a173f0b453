"""What every visuals provider does with its asset: show it under the scene.

A provider obtains a picture or a clip (a stock search, a generated image, a
generated video) into a scratch folder; the motion renderer then shows it as
if the user had supplied it (Ken Burns on a picture, a clip trimmed or
looped, the scene's text over either), the scratch folder goes, and the
asset's `AssetSource` is written beside the clip for the credits.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from aiprod.production.backends.motion import MotionRenderer
from aiprod.production.models import Scene, UserMedia
from aiprod.production.providers.client import ProviderError
from aiprod.production.stages.base import ProgressFn
from aiprod.production.stages.visuals import AssetSource, SceneContext, source_path

Obtain = Callable[[Path, ProgressFn], tuple[Path, AssetSource]]
"""Fetch or make the asset into the given folder (reporting progress 0..1);
the file and where it came from."""


def render_over_asset(
    motion: MotionRenderer,
    scene: Scene,
    ctx: SceneContext,
    out: Path,
    progress: ProgressFn,
    obtain: Obtain,
    obtain_share: float = 0.0,
) -> None:
    """Render `scene` into `out` over the asset `obtain` brings, then write its
    AssetSource beside `out`.  `obtain_share` is the part of the progress the
    obtaining takes (a generated clip: half).  An asset the renderer cannot
    decode is the provider's failure (ProviderError), not ours."""
    folder = out.with_name(out.stem + ".asset")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path, source = obtain(folder, lambda f: progress(obtain_share * f))
        media = UserMedia(scene=scene.index, file=path, license=source.licence)
        try:
            motion.render(
                scene.model_copy(update={"media": media}),
                ctx,
                out,
                lambda f: progress(obtain_share + (1 - obtain_share) * f),
            )
        except ValueError:
            raise ProviderError(
                source.provider,
                "download",
                f"the {source.kind} {source.id} it served cannot be read",
            ) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    source_path(out).write_text(source.model_dump_json(indent=2), encoding="utf-8")
