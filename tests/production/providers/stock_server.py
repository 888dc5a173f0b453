"""Local stand-ins for stock libraries and an image service: tiny real media
files and the JSON items of each documented wire format (Pexels, Pixabay,
OpenAI images), whose asset URLs point back at the same local server.

Also what the visuals-stage tests share: a tiny render spec, a StageContext
over a temporary output folder, and a storyboard of title, content and end
scenes."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from aiprod.production.cache import StageCache
from aiprod.production.models import (
    STAGES,
    ProductionRequest,
    RenderSpec,
    Scene,
    Storyboard,
    VisualStyle,
)
from aiprod.production.stages.context import StageContext
from aiprod.production.stages.visuals import SceneContext

from .wire import LocalService, Reply

TINY = RenderSpec(width=320, height=180, fps=24, quality="draft")


def picture(
    size: tuple[int, int] = (480, 270), color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    """A small JPEG: a flat colour with a white block."""
    img = Image.new("RGB", size, color)
    img.paste((255, 255, 255), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def png(size: tuple[int, int] = (384, 256), color: tuple[int, int, int] = (30, 160, 90)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def clip(
    seconds: float = 1.5, size: tuple[int, int] = (480, 270), level: int = 120, fps: int = 12
) -> bytes:
    """A small real H.264 MP4 of flat grey frames."""
    buf = io.BytesIO()
    w, h = size
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(round(seconds * fps)):
            pixels = np.full((h, w, 3), (level + 3 * i) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def serve(service: LocalService, path: str, data: bytes, kind: str) -> str:
    """Serve `data` at `path`; its URL."""
    service.route("GET", path, [Reply(200, data, {"content-type": kind})])
    return service.url + path


# ------------------------------------------------------------------- Pexels


def pexels_photo(
    service: LocalService, photo_id: int, size: tuple[int, int] = (4000, 2250), author: str = ""
) -> dict[str, Any]:
    base = f"{service.url}/photos/{photo_id}"
    return {
        "id": photo_id,
        "width": size[0],
        "height": size[1],
        "url": f"https://www.pexels.com/photo/p-{photo_id}/",
        "photographer": author or f"Photographer {photo_id}",
        "photographer_url": f"https://www.pexels.com/@p{photo_id}",
        "photographer_id": photo_id,
        "avg_color": "#7E7E7E",
        "alt": "a picture",
        "src": {
            "original": f"{base}/original.jpg",
            "large2x": f"{base}/large2x.jpg?auto=compress&cs=tinysrgb&dpr=2&h=650&w=940",
            "large": f"{base}/large.jpg?auto=compress&cs=tinysrgb&h=650&w=940",
            "medium": f"{base}/medium.jpg?auto=compress&cs=tinysrgb&h=350",
            "small": f"{base}/small.jpg?auto=compress&cs=tinysrgb&h=130",
            "portrait": f"{base}/portrait.jpg",
            "landscape": f"{base}/landscape.jpg",
            "tiny": f"{base}/tiny.jpg",
        },
    }


def pexels_video(
    service: LocalService,
    video_id: int,
    duration: int = 10,
    files: list[tuple[int, int]] | None = None,
    author: str = "",
) -> dict[str, Any]:
    files = files or [(640, 360), (1280, 720), (1920, 1080)]
    return {
        "id": video_id,
        "width": max(w for w, _ in files),
        "height": max(h for _, h in files),
        "duration": duration,
        "url": f"https://www.pexels.com/video/v-{video_id}/",
        "image": f"{service.url}/videos/{video_id}.jpg",
        "user": {
            "id": video_id,
            "name": author or f"Videographer {video_id}",
            "url": f"https://www.pexels.com/@v{video_id}",
        },
        "video_files": [
            {
                "id": video_id * 10 + k,
                "quality": "hd" if h >= 720 else "sd",
                "file_type": "video/mp4",
                "width": w,
                "height": h,
                "fps": 25,
                "link": f"{service.url}/videos/{video_id}/{w}x{h}.mp4",
            }
            for k, (w, h) in enumerate(files)
        ]
        + [
            {
                "id": 0,
                "quality": None,
                "file_type": "hls",
                "width": None,
                "height": None,
                "link": f"{service.url}/videos/{video_id}/playlist.m3u8",
            }
        ],
        "video_pictures": [],
    }


def pexels_photos(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"page": 1, "per_page": 15, "total_results": len(items), "photos": items}


def pexels_videos(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"page": 1, "per_page": 15, "total_results": len(items), "videos": items}


# ------------------------------------------------------------------ Pixabay


def pixabay_photo(
    service: LocalService, photo_id: int, size: tuple[int, int] = (1920, 1080), user: str = ""
) -> dict[str, Any]:
    return {
        "id": photo_id,
        "pageURL": f"https://pixabay.com/photos/p-{photo_id}/",
        "type": "photo",
        "tags": "bee, flower",
        "previewURL": f"{service.url}/pix/{photo_id}_150.jpg",
        "webformatURL": f"{service.url}/pix/{photo_id}_640.jpg",
        "largeImageURL": f"{service.url}/pix/{photo_id}_1280.jpg",
        "imageWidth": size[0],
        "imageHeight": size[1],
        "user_id": 500 + photo_id,
        "user": user or f"pixuser{photo_id}",
        "userImageURL": "",
    }


def pixabay_video(
    service: LocalService, video_id: int, duration: int = 12, user: str = ""
) -> dict[str, Any]:
    sizes = {
        "large": (3840, 2160),
        "medium": (1920, 1080),
        "small": (1280, 720),
        "tiny": (960, 540),
    }
    return {
        "id": video_id,
        "pageURL": f"https://pixabay.com/videos/v-{video_id}/",
        "type": "film",
        "tags": "bee",
        "duration": duration,
        "videos": {
            name: {
                "url": f"{service.url}/pixv/{video_id}_{name}.mp4",
                "width": w,
                "height": h,
                "size": w * h,
                "thumbnail": "",
            }
            for name, (w, h) in sizes.items()
        },
        "user_id": 900 + video_id,
        "user": user or f"pixfilm{video_id}",
    }


def pixabay_hits(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"total": len(items), "totalHits": len(items), "hits": items}


# -------------------------------------------------------------- the stage


def scene_context(spec: RenderSpec = TINY, **kw: Any) -> SceneContext:
    return SceneContext(spec=spec, style=VisualStyle(), title="Bees", scene_count=4, seed=3, **kw)


def stage_context(
    tmp_path: Path, visuals: str, spec: RenderSpec = TINY, cache: bool = True
) -> StageContext:
    request = ProductionRequest(prompt="Honeybees at work", backends={"visuals": visuals})
    return StageContext(
        request=request,
        outdir=tmp_path / "out",
        spec=spec,
        cache=StageCache(tmp_path / "cache") if cache else None,
        weights=dict.fromkeys(STAGES, 1.0),
        on_progress=None,
        should_cancel=lambda: False,
        on_stage_done=None,
    )


def storyboard(*content: dict[str, Any], end: bool = True) -> Storyboard:
    """A title card, the content scenes (Scene fields), and an end card."""
    scenes = [Scene(index=0, kind="title", visual="Title card: Bees", duration=1.0)]
    for fields in content:
        scenes.append(Scene(index=len(scenes), duration=1.0, **fields))
    if end:
        scenes.append(Scene(index=len(scenes), kind="end", visual="End card", duration=1.0))
    return Storyboard(title="Bees", scenes=scenes, seed=3)
