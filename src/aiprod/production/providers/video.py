"""Generated video clips as the visuals backend: a Replicate-style task API.

Video models take minutes, so their services answer a request with a task
(a *prediction*) to poll rather than with the clip.  ``replicate-video``
speaks Replicate's documented predictions API, which serves many text-to-video
models behind one wire format (and which self-hosted runners such as Cog
expose too):

1. submit: ``POST {base}/models/{owner}/{name}/predictions`` with
   ``{"input": {"prompt", "duration", "aspect_ratio"}}`` (Bearer key) → a
   prediction ``{id, status: starting, urls: {get, cancel}}``;
2. poll: ``GET {base}/predictions/{id}`` every 2 s (growing to 10 s) until
   ``succeeded`` (``output``: the clip's URL, or a list of URLs), ``failed``
   or ``canceled`` (``error``) — bounded by ``task_timeout_seconds``, after
   which the prediction is cancelled (``POST …/cancel``) so it stops costing;
3. fetch the output through the guarded downloader (the URL comes from the
   service: SSRF guard, size and type limits) and hand it to the motion
   renderer as the scene's footage (trimmed or looped to the scene, the
   on-screen text drawn over it).

The prompt is ours, around the scene's visual description (as for generated
images).  A clip is asked for as long as the scene (whole seconds, at most
``MAX_SECONDS``; a longer scene loops it); each clip is priced per ``second``
asked for, authorized against the budget before it is submitted.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiprod.production.backends.motion import MotionRenderer
from aiprod.production.models import Scene
from aiprod.production.providers import (
    ProviderClient,
    ProviderError,
    client_for,
    current_settings,
    metering,
)
from aiprod.production.providers.assets import render_over_asset
from aiprod.production.providers.client import bearer
from aiprod.production.providers.download import fetch
from aiprod.production.providers.images import image_prompt
from aiprod.production.providers.stock import public_url
from aiprod.production.stages.base import ProgressFn
from aiprod.production.stages.visuals import AssetSource, SceneContext, VisualRenderer

DEFAULT_BASE_URL = "https://api.replicate.com/v1"
DEFAULT_MODEL = "minimax/video-01"
MAX_SECONDS = 10
POLL_FIRST, POLL_MAX = 2.0, 10.0
DONE = frozenset({"succeeded", "failed", "canceled"})


def aspect_ratio(width: int, height: int) -> str:
    ratio = width / height
    return "16:9" if ratio > 1.2 else "9:16" if ratio < 1 / 1.2 else "1:1"


def clip_seconds(duration: float) -> int:
    return max(1, min(MAX_SECONDS, math.ceil(duration)))


class VideoTaskRenderer:
    """Visuals backend ``replicate-video`` (see the module's doc)."""

    name = "replicate-video"
    version = "1"

    def __init__(
        self,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.motion = MotionRenderer()
        self._sleep, self._clock = sleep, clock

    def client(self) -> ProviderClient:
        return client_for(
            self.name,
            DEFAULT_BASE_URL,
            auth_headers=bearer,
        )

    def writes_source(self, scene: Scene) -> bool:
        return scene.kind == "content" and scene.media is None

    def generate(
        self, scene: Scene, ctx: SceneContext, out: Path, progress: ProgressFn
    ) -> AssetSource:
        """Submit, poll and fetch the scene's clip into `out` (MP4)."""
        client = self.client()
        model = client.config.model or DEFAULT_MODEL
        if model.count("/") != 1 or not all(model.split("/")):
            raise ProviderError(
                self.name, "predictions.create", f"model {model!r} is not owner/name"
            )
        seconds = clip_seconds(scene.duration)
        prompt = image_prompt(scene, ctx).replace("still image", "video clip")
        body = {
            "input": {
                "prompt": prompt,
                "duration": seconds,
                "aspect_ratio": aspect_ratio(ctx.spec.width, ctx.spec.height),
            }
        }
        meter = metering.current()
        meter.authorize(self.name, "second", seconds)
        task = client.json("predictions.create", "POST", f"models/{model}/predictions", json=body)
        task = self._wait(client, task, progress)
        meter.charge(self.name, "predictions.create", "second", seconds)
        url = _output_url(self.name, task)
        settings = current_settings()
        fetch(
            self.name,
            url,
            out,
            allowed_types=("video/mp4", "video/quicktime", "video/webm"),
            max_bytes=settings.provider_download_max_bytes,
            allow_private=settings.provider_allow_private_networks,
        )
        return AssetSource(
            provider=self.name,
            kind="clip",
            id=str(task.get("id") or hashlib.sha256(url.encode()).hexdigest()[:16]),
            media_url=public_url(url),
            licence=f"generated by {model}",
            credit=f"generated by {model}",
            prompt=prompt,
        )

    def _wait(self, client: ProviderClient, task: Any, progress: ProgressFn) -> dict[str, Any]:
        """Poll the prediction until it is done; cancel it when it takes too long."""
        if not isinstance(task, dict) or not isinstance(task.get("id"), str):
            raise ProviderError(self.name, "predictions.create", "the answer has no prediction id")
        task_id: str = task["id"]
        limit = client.config.task_timeout_seconds
        start = self._clock()
        pause = POLL_FIRST
        while task.get("status") not in DONE:
            waited = self._clock() - start
            if waited >= limit:
                # (a failure: it is cancelled or finished by now, or the service is down)
                with contextlib.suppress(ProviderError):
                    client.request("predictions.cancel", "POST", f"predictions/{task_id}/cancel")
                raise ProviderError(
                    self.name,
                    "predictions.get",
                    f"prediction {task_id} not done within {limit:g} s (cancelled)",
                    transient=True,
                )
            progress(min(0.9, waited / limit))
            self._sleep(min(pause, max(0.0, limit - waited)))
            pause = min(POLL_MAX, pause * 1.5)
            task = client.json("predictions.get", "GET", f"predictions/{task_id}")
            if not isinstance(task, dict):
                raise ProviderError(self.name, "predictions.get", "the answer is not an object")
        if task["status"] != "succeeded":
            error = str(task.get("error") or task["status"])[:300]
            raise ProviderError(self.name, "predictions.get", f"prediction {task_id}: {error}")
        return task

    def render(self, scene: Scene, ctx: SceneContext, out: Path, progress: ProgressFn) -> None:
        if not self.writes_source(scene):
            self.motion.render(scene, ctx, out, progress)
            return

        def obtain(folder: Path, report: ProgressFn) -> tuple[Path, AssetSource]:
            clip = folder / "clip.mp4"
            return clip, self.generate(scene, ctx, clip, report)

        render_over_asset(self.motion, scene, ctx, out, progress, obtain, obtain_share=0.5)


def _output_url(provider: str, task: dict[str, Any]) -> str:
    output = task.get("output")
    if isinstance(output, list):
        output = next((o for o in output if isinstance(o, str)), None)
    if not isinstance(output, str) or not output:
        raise ProviderError(provider, "predictions.get", "the prediction succeeded without output")
    return output


if TYPE_CHECKING:  # VideoTaskRenderer must satisfy the stage's protocol (checked by mypy)
    _conforms: VisualRenderer = VideoTaskRenderer()
