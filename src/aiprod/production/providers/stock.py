"""Stock photos and videos as the visuals backend: Pexels and Pixabay.

For each content scene the renderer searches the library, picks one asset,
fetches it through the guarded downloader and hands it to the motion renderer
as if the user had supplied it (a video is trimmed or looped, a photo gets a
Ken Burns move; the on-screen text is drawn over it as a lower third).  Title
and end cards, and scenes that come with the user's own media, stay motion
graphics.

Searching: the scene's ``search_terms`` (written by the chat planner), else
the keywords of its visual description, on-screen text and narration; a query
without results (or with none that fits the frame) gives way to broader ones
(fewer words) before the renderer settles for the narrowest query's best find
or gives up (``ProviderError``, "no stock result").  Videos are searched first,
in the video's orientation (landscape, portrait, square); photos only when no
video fits.

Choosing (`best`): an asset *fits* when its rendition covers the frame without
upscaling and its shape is close to the frame's.  A fitting video at least as
long as the scene is best, then a fitting photo, then a fitting video that
must loop, then whatever needs the least upscaling; among equals the smaller
download, the closer duration and the library's own relevance order decide.
Each asset's rendition is the smallest that covers the frame (else its
largest).  An asset an earlier scene of the production used is taken again
only when nothing else was found.

Credits: each stock scene writes its `AssetSource` (author, page, licence)
beside the clip; the visuals stage turns them into credits (see
``stages/visuals.py``).  Both libraries' licences allow use without
attribution; the credits are given anyway.

The services' own wire formats (requests, answers) are in ``stock_services.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiprod.production.backends.motion import MotionRenderer
from aiprod.production.language import stop_words
from aiprod.production.models import RenderSpec, Scene
from aiprod.production.providers import (
    ProviderClient,
    ProviderError,
    current_settings,
)
from aiprod.production.providers.assets import render_over_asset
from aiprod.production.providers.download import fetch
from aiprod.production.stages.base import ProgressFn
from aiprod.production.stages.visuals import AssetSource, SceneContext

Kind = Literal["photo", "video"]
Orientation = Literal["landscape", "portrait", "square"]

PER_PAGE = 15
"""Results asked for per search: enough to choose from and to avoid repeats."""
MAX_QUERIES = 6
"""Searches (each a video and maybe a photo request) before a scene gives up."""
FITTING_TIER = 2
"""Scores up to this tier (`score`) fit the frame; a poorer find lets broader searches try."""
SIZE_TOLERANCE = 1.02
"""Upscaling a rendition by up to 2 % still counts as covering the frame."""
MAX_CROP = 0.45
"""The share of a picture cover-fitting may cut away and still count as the frame's shape
(a square picture in 16:9 loses 44 %; a portrait picture in 16:9 loses 68 %)."""

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
VIDEO_TYPES = ("video/mp4",)
_SUFFIX = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "video/mp4": ".mp4"}

_WORD = re.compile(r"\w+", re.UNICODE)
_SECRET_PARAM = re.compile(r"key|token|sig|secret|auth|password|credential", re.IGNORECASE)


def public_url(url: str | None) -> str | None:
    """`url` without any query parameter that could carry a credential (Pixabay
    wants its key in the query of API calls: it must never reach a record)."""
    if not url:
        return None
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    clean = [(k, v) for k, v in kept if not _SECRET_PARAM.search(k)]
    if len(clean) == len(kept):
        return url
    return urlunsplit(parts._replace(query=urlencode(clean)))


# ----------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    text: str
    localized: bool  # the scene's own words (its language), not the planner's English terms


def keywords(scene: Scene, language: str, limit: int = 4) -> list[str]:
    """Topic words of the scene (visual description, then on-screen text, then
    narration) in order of appearance, without stop-words, digits or short words."""
    stops = stop_words(language)
    seen: dict[str, None] = {}
    for text in (scene.visual, scene.on_screen_text, scene.narration):
        for word in _WORD.findall(text.lower()):
            if len(word) > 2 and not word.isdigit() and word not in stops and "_" not in word:
                seen.setdefault(word)
                if len(seen) >= limit:
                    return list(seen)
    return list(seen)


def queries(scene: Scene, language: str) -> list[Query]:
    """The searches for a scene, narrowest first: its search terms, then those
    terms with fewer words (the head noun of an English phrase comes last), or,
    without terms, its keywords three, two, then one at a time."""
    out: list[Query] = []
    terms = [" ".join(t.split()) for t in scene.search_terms if t.strip()]
    if terms:
        out += [Query(t, False) for t in terms]
        for t in terms:
            words = t.split()
            out += [Query(" ".join(words[k:]), False) for k in range(1, len(words))]
    else:
        words = keywords(scene, language)
        out += [Query(" ".join(words[:k]), True) for k in (3, 2, 1) if len(words) >= k]
    unique = list({q.text.lower(): q for q in reversed(out)}.values())[::-1]
    return unique[:MAX_QUERIES]


def orientation(spec: RenderSpec) -> Orientation:
    ratio = spec.width / spec.height
    return "landscape" if ratio > 1.2 else "portrait" if ratio < 1 / 1.2 else "square"


# ---------------------------------------------------------------- choosing


@dataclass(frozen=True)
class Rendition:
    url: str
    width: int
    height: int


@dataclass(frozen=True)
class Candidate:
    """One search result, with the rendition that would be fetched."""

    kind: Kind
    id: str
    rendition: Rendition
    duration: float | None  # videos
    page_url: str | None
    author: str | None
    author_url: str | None
    rank: int  # position in the library's answer (its relevance)


def _cover_scale(r: Rendition, spec: RenderSpec) -> float:
    """How much the rendition must be scaled to cover the frame (≤ 1: no upscaling)."""
    return max(spec.width / r.width, spec.height / r.height)


def _crop(r: Rendition, spec: RenderSpec) -> float:
    """The share of the rendition that cover-fitting cuts away."""
    a, b = r.width / r.height, spec.width / spec.height
    return 1 - min(a, b) / max(a, b)


def pick_rendition(renditions: list[Rendition], spec: RenderSpec) -> Rendition | None:
    """The smallest rendition that covers the frame, else the largest."""
    usable = [r for r in renditions if r.url and r.width > 0 and r.height > 0]
    if not usable:
        return None
    covering = [r for r in usable if _cover_scale(r, spec) <= SIZE_TOLERANCE]
    if covering:
        return min(covering, key=lambda r: r.width * r.height)
    return max(usable, key=lambda r: r.width * r.height)


def score(c: Candidate, spec: RenderSpec, duration: float) -> tuple[float, ...]:
    """Sort key of a candidate (lower is better); see the module's doc."""
    scale = _cover_scale(c.rendition, spec)
    fits = scale <= SIZE_TOLERANCE and _crop(c.rendition, spec) <= MAX_CROP
    long_enough = c.duration is not None and c.duration >= duration
    if c.kind == "video":
        tier = (0 if long_enough else 2) if fits else (3 if long_enough else 5)
        gap = abs((c.duration or 0.0) - duration)
    else:
        tier = 1 if fits else 4
        gap = 0.0
    # Bigger than needed costs download time; smaller costs sharpness.
    size = round((1 / scale if scale <= SIZE_TOLERANCE else scale) * 4) / 4
    return (tier, size, round(gap / 5), c.rank)


def best(
    candidates: list[Candidate], spec: RenderSpec, duration: float, used: frozenset[str]
) -> Candidate | None:
    """The best candidate an earlier scene has not used (None if every one was)."""
    fresh = [c for c in candidates if f"{c.kind}:{c.id}" not in used]
    return min(fresh, key=lambda c: score(c, spec, duration), default=None)


@dataclass(frozen=True)
class Pick:
    candidate: Candidate
    query: str


# ---------------------------------------------------------------- renderer


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def items_of(body: Any, field: str, provider: str, call: str) -> list[Mapping[str, Any]]:
    items = body.get(field) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ProviderError(provider, call, f"unexpected answer: no {field!r} list")
    return [item for item in items if isinstance(item, dict)]


class StockRenderer:
    """What Pexels and Pixabay share: search, choose, fetch, render, credit."""

    name = "stock"
    version = "1"
    label = "Stock"  # the library, as credits name it
    licence = ""
    licence_url = ""

    def __init__(self) -> None:
        self.motion = MotionRenderer()

    # Implemented per library -------------------------------------------------

    def client(self) -> ProviderClient:
        raise NotImplementedError

    def search(
        self, client: ProviderClient, kind: Kind, query: Query, ctx: SceneContext
    ) -> list[Candidate]:
        raise NotImplementedError

    # Shared ------------------------------------------------------------------

    def writes_source(self, scene: Scene) -> bool:
        """Stock is fetched for content scenes without the user's own media."""
        return scene.kind == "content" and scene.media is None

    def choose(self, scene: Scene, ctx: SceneContext) -> Pick:
        """Search the library for the scene and pick its asset (no download)."""
        client = self.client()
        used = frozenset(
            key.split(":", 1)[1] for key in ctx.used if key.startswith(self.name + ":")
        )
        tried = queries(scene, ctx.language)
        if not tried:
            raise ProviderError(self.name, "search", f"scene {scene.index} has no words to search")
        duration = scene.duration
        poor: list[Pick] = []  # found, but not fitting the frame: kept in case nothing does
        repeats: list[Pick] = []  # found, but shown by an earlier scene already
        for query in tried:
            found = self.search(client, "video", query, ctx)
            chosen = best(found, ctx.spec, duration, used)
            if chosen is None or score(chosen, ctx.spec, duration)[0] > 0:
                found += self.search(client, "photo", query, ctx)
                chosen = best(found, ctx.spec, duration, used)
            if chosen is not None and score(chosen, ctx.spec, duration)[0] <= FITTING_TIER:
                return Pick(chosen, query.text)
            if chosen is not None:
                poor.append(Pick(chosen, query.text))
            repeats += [Pick(c, query.text) for c in found]
        # The narrowest search's best, however poor; else a repeat rather than nothing.
        for picks in (poor, repeats):
            if picks:
                return min(picks, key=lambda p: score(p.candidate, ctx.spec, duration)[0])
        words = ", ".join(repr(q.text) for q in tried)
        raise ProviderError(self.name, "search", f"no stock result for {words}")

    def source(self, pick: Pick) -> AssetSource:
        c = pick.candidate
        return AssetSource(
            provider=self.name,
            kind=c.kind,
            id=c.id,
            page_url=public_url(c.page_url),
            media_url=public_url(c.rendition.url),
            author=c.author,
            author_url=public_url(c.author_url),
            licence=self.licence,
            licence_url=self.licence_url,
            attribution_required=False,
            credit=f"{c.author or 'unknown'} ({self.label})",
            query=pick.query,
        )

    def render(self, scene: Scene, ctx: SceneContext, out: Path, progress: ProgressFn) -> None:
        if not self.writes_source(scene):
            self.motion.render(scene, ctx, out, progress)
            return
        pick = self.choose(scene, ctx)
        c = pick.candidate

        def obtain(folder: Path, _: ProgressFn) -> tuple[Path, AssetSource]:
            settings = current_settings()
            download = folder / "download"
            kind = fetch(
                self.name,
                c.rendition.url,
                download,
                allowed_types=VIDEO_TYPES if c.kind == "video" else IMAGE_TYPES,
                max_bytes=settings.provider_download_max_bytes,
                allow_private=settings.provider_allow_private_networks,
            )
            return download.rename(folder / f"{c.kind}{_SUFFIX[kind]}"), self.source(pick)

        render_over_asset(self.motion, scene, ctx, out, progress, obtain)
