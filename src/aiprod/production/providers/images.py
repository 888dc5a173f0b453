"""Generated images as the visuals backend: OpenAI-style ``POST /images/generations``.

For each content scene one picture is generated from the scene's visual
description and the production's style, in the size the service offers that
is closest to the video's shape, then shown with a Ken Burns move by the
motion renderer (which also draws the on-screen text over it).  Title and end
cards, and scenes with the user's own media, stay motion graphics.

The prompt is ours: a fixed sentence around the scene's description (the
words the planner or the user wrote about what the scene shows), the style,
and a request for no lettering (the on-screen text is drawn by us, legibly).
The description is only ever a subject to depict; nothing the service returns
is passed on as an instruction.  Each call is one ``image`` on the meter,
authorized against the budget before it is made.

The answer carries the picture inline (``b64_json``, gpt-image-1) or as a URL
(``url``, dall-e models by default), which is fetched through the guarded
downloader.  Either way it must decode as an image, and is kept as PNG.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from aiprod.production.backends.motion import MotionRenderer
from aiprod.production.models import RenderSpec, Scene, VisualStyle
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
from aiprod.production.providers.stock import public_url
from aiprod.production.stages.base import ProgressFn
from aiprod.production.stages.visuals import AssetSource, SceneContext, VisualRenderer

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-image-1"
CALL = "image generation"

SIZES: dict[str, tuple[str, ...]] = {
    "gpt-image": ("1536x1024", "1024x1536", "1024x1024"),
    "dall-e-3": ("1792x1024", "1024x1792", "1024x1024"),
    "dall-e-2": ("1024x1024",),
}
"""The sizes each model family generates (any other model: gpt-image's)."""

_PALETTE_WORDS: dict[str, str] = {
    "sunset": "warm golden-hour light, orange and magenta tones",
    "ocean": "cool blue and teal tones",
    "forest": "natural greens and earthy browns",
    "mono": "black and white",
    "neon": "vivid neon colours against dark tones",
    "pastel": "soft pastel colours",
    "corporate": "clean, professional blue and grey tones",
}
MAX_DESCRIPTION = 800
"""Characters of the scene's description that enter a prompt."""


def image_size(model: str, spec: RenderSpec) -> str:
    """The size the model offers whose shape is closest to the video's."""
    family = next((f for f in SIZES if model.startswith(f)), "gpt-image")
    target = spec.width / spec.height

    def distance(size: str) -> float:
        w, h = (int(v) for v in size.split("x"))
        return abs(w / h - target) / min(w / h, target)

    return min(SIZES[family], key=distance)


def style_words(style: VisualStyle) -> str:
    if isinstance(style.palette, list):
        return "a colour palette of " + ", ".join(style.palette)
    return _PALETTE_WORDS.get(style.palette, "")


def image_prompt(scene: Scene, ctx: SceneContext) -> str:
    """The prompt for a scene's picture: its description as the subject."""
    subject = " ".join((scene.visual or scene.on_screen_text or scene.narration).split())
    subject = subject[:MAX_DESCRIPTION].rstrip(" .") or "an abstract background"
    ratio = ctx.spec.width / ctx.spec.height
    frame = "wide landscape" if ratio > 1.2 else "tall portrait" if ratio < 1 / 1.2 else "square"
    look = style_words(ctx.style)
    return (
        f"A {frame} still image for one scene of a video. The scene shows: {subject}. "
        + (f"Colours: {look}. " if look else "")
        + "Photographic, natural lighting, uncluttered composition with calm space for "
        "captions. No text, letters, numbers, logos or watermarks in the image."
    )


class ImageRenderer:
    """Visuals backend ``openai-images`` (see the module's doc)."""

    name = "openai-images"
    version = "1"

    def __init__(self) -> None:
        self.motion = MotionRenderer()

    def client(self) -> ProviderClient:
        return client_for(
            self.name,
            DEFAULT_BASE_URL,
            auth_headers=bearer,
        )

    def writes_source(self, scene: Scene) -> bool:
        """A picture is generated for content scenes without the user's own media."""
        return scene.kind == "content" and scene.media is None

    def generate(self, scene: Scene, ctx: SceneContext, out: Path) -> AssetSource:
        """Generate the scene's picture into `out` (PNG); its AssetSource."""
        client = self.client()
        model = client.config.model or DEFAULT_MODEL
        prompt = image_prompt(scene, ctx)
        request = {"model": model, "prompt": prompt, "size": image_size(model, ctx.spec), "n": 1}
        meter = metering.current()
        meter.authorize(self.name, "image", 1)
        body = client.json(CALL, "POST", "images/generations", json=request)
        meter.charge(self.name, CALL, "image", 1)
        item = _first(body)
        url: str | None = None
        if isinstance(item.get("b64_json"), str):
            try:
                data = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError):
                raise ProviderError(self.name, CALL, "b64_json is not base64") from None
        elif isinstance(item.get("url"), str):
            url = str(item["url"])
            settings = current_settings()
            download = out.with_suffix(".download")
            try:
                fetch(
                    self.name,
                    url,
                    download,
                    allowed_types=("image/png", "image/jpeg", "image/webp"),
                    max_bytes=settings.provider_download_max_bytes,
                    allow_private=settings.provider_allow_private_networks,
                )
                data = download.read_bytes()
            finally:
                download.unlink(missing_ok=True)
        else:
            raise ProviderError(self.name, CALL, "the answer holds neither b64_json nor url")
        _save_png(self.name, data, out)
        return AssetSource(
            provider=self.name,
            kind="image",
            id=hashlib.sha256(data).hexdigest()[:16],
            media_url=public_url(url),
            licence=f"generated by {model}",
            attribution_required=False,
            credit=f"generated by {model}",
            prompt=prompt,
        )

    def render(self, scene: Scene, ctx: SceneContext, out: Path, progress: ProgressFn) -> None:
        if not self.writes_source(scene):
            self.motion.render(scene, ctx, out, progress)
            return

        def obtain(folder: Path, _: ProgressFn) -> tuple[Path, AssetSource]:
            picture = folder / "image.png"
            return picture, self.generate(scene, ctx, picture)

        render_over_asset(self.motion, scene, ctx, out, progress, obtain)


def _first(body: Any) -> dict[str, Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise ProviderError("openai-images", CALL, "unexpected answer: no 'data' list")
    first: dict[str, Any] = data[0]
    return first


def _save_png(provider: str, data: bytes, out: Path) -> None:
    """Decode the picture (refusing anything that is not one) and keep it as PNG."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ProviderError(provider, CALL, "the answer's image cannot be decoded") from None
    rgb.save(out, format="PNG")


if TYPE_CHECKING:  # ImageRenderer must satisfy the stage's protocol (checked by mypy)
    _conforms: VisualRenderer = ImageRenderer()
