"""The two stock libraries' wire formats: Pexels and Pixabay.

Each class says how to call its service (the key in a header for Pexels, in
the query for Pixabay, as their APIs require) and how to read its answers into
``Candidate`` assets; choosing, fetching, rendering and crediting them is
``stock.StockRenderer``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiprod.production.language import base_language
from aiprod.production.models import RenderSpec
from aiprod.production.providers import ProviderClient, client_for
from aiprod.production.providers.stock import (
    PER_PAGE,
    Candidate,
    Kind,
    Query,
    Rendition,
    StockRenderer,
    as_int,
    as_str,
    items_of,
    orientation,
    pick_rendition,
)
from aiprod.production.stages.visuals import SceneContext, VisualRenderer


class PexelsRenderer(StockRenderer):
    """Pexels (https://www.pexels.com/api/documentation/): ``Authorization: <key>``."""

    name = "pexels"
    label = "Pexels"
    licence = "Pexels License"
    licence_url = "https://www.pexels.com/license/"
    base_url = "https://api.pexels.com"

    _LOCALES: Mapping[str, str] = {
        "fr": "fr-FR", "es": "es-ES", "de": "de-DE", "it": "it-IT", "pt": "pt-BR",
        "pl": "pl-PL", "ru": "ru-RU", "el": "el-GR",
    }  # fmt: skip

    def client(self) -> ProviderClient:
        return client_for(self.name, self.base_url, auth_headers=lambda key: {"authorization": key})

    def search(
        self, client: ProviderClient, kind: Kind, query: Query, ctx: SceneContext
    ) -> list[Candidate]:
        params: dict[str, Any] = {
            "query": query.text,
            "orientation": orientation(ctx.spec),
            "per_page": PER_PAGE,
        }
        locale = self._LOCALES.get(base_language(ctx.language))
        if query.localized and locale:
            params["locale"] = locale
        if kind == "video":
            short = min(ctx.spec.width, ctx.spec.height)
            if short >= 1080:
                params["size"] = "medium"  # Full HD at least
            elif short >= 720:
                params["size"] = "small"  # HD at least
            call = "video search"
            body = client.json(call, "GET", "videos/search", params=params)
            return [
                c
                for rank, item in enumerate(items_of(body, "videos", self.name, call))
                if (c := self._video(item, rank, ctx.spec)) is not None
            ]
        call = "photo search"
        body = client.json(call, "GET", "v1/search", params=params)
        return [
            c
            for rank, item in enumerate(items_of(body, "photos", self.name, call))
            if (c := self._photo(item, rank, ctx.spec)) is not None
        ]

    def _video(self, item: Mapping[str, Any], rank: int, spec: RenderSpec) -> Candidate | None:
        files = item.get("video_files")
        renditions = [
            Rendition(f["link"], as_int(f.get("width")), as_int(f.get("height")))
            for f in (files if isinstance(files, list) else [])
            if isinstance(f, dict)
            and f.get("file_type") == "video/mp4"
            and isinstance(f.get("link"), str)
        ]
        rendition = pick_rendition(renditions, spec)
        if rendition is None or not as_int(item.get("id")):
            return None
        raw_user = item.get("user")
        user: Mapping[str, Any] = raw_user if isinstance(raw_user, dict) else {}
        duration = item.get("duration")
        return Candidate(
            kind="video",
            id=str(item["id"]),
            rendition=rendition,
            duration=float(duration) if isinstance(duration, int | float) else None,
            page_url=as_str(item.get("url")),
            author=as_str(user.get("name")),
            author_url=as_str(user.get("url")),
            rank=rank,
        )

    def _photo(self, item: Mapping[str, Any], rank: int, spec: RenderSpec) -> Candidate | None:
        width, height = as_int(item.get("width")), as_int(item.get("height"))
        src = item.get("src")
        if not (width and height and isinstance(src, dict) and as_int(item.get("id"))):
            return None
        # Pexels' sizes: the original, and fitted into 1880x1300 (large2x) or
        # 940x650 (large).
        renditions = []
        for field, box in (("original", None), ("large2x", (1880, 1300)), ("large", (940, 650))):
            url = as_str(src.get(field))
            if url is None:
                continue
            scale = 1.0 if box is None else min(1.0, box[0] / width, box[1] / height)
            renditions.append(Rendition(url, round(width * scale), round(height * scale)))
        rendition = pick_rendition(renditions, spec)
        if rendition is None:
            return None
        return Candidate(
            kind="photo",
            id=str(item["id"]),
            rendition=rendition,
            duration=None,
            page_url=as_str(item.get("url")),
            author=as_str(item.get("photographer")),
            author_url=as_str(item.get("photographer_url")),
            rank=rank,
        )


class PixabayRenderer(StockRenderer):
    """Pixabay (https://pixabay.com/api/docs/): the key in the query (``key=``)."""

    name = "pixabay"
    label = "Pixabay"
    licence = "Pixabay Content License"
    licence_url = "https://pixabay.com/service/license-summary/"
    base_url = "https://pixabay.com/api"

    _LANGS = frozenset({"cs", "da", "de", "en", "es", "fr", "id", "it", "hu", "nl", "no", "pl",
                        "pt", "ro", "sk", "fi", "sv", "tr", "vi", "th", "bg", "ru", "el", "ja",
                        "ko", "zh"})  # fmt: skip

    def client(self) -> ProviderClient:
        return client_for(self.name, self.base_url, auth_params=lambda key: {"key": key})

    def search(
        self, client: ProviderClient, kind: Kind, query: Query, ctx: SceneContext
    ) -> list[Candidate]:
        params: dict[str, Any] = {"q": query.text, "safesearch": "true", "per_page": PER_PAGE}
        lang = base_language(ctx.language)
        if query.localized and lang in self._LANGS and lang != "en":
            params["lang"] = lang
        if kind == "video":
            call = "video search"
            params["video_type"] = "film"
            body = client.json(call, "GET", "videos/", params=params)
            return [
                c
                for rank, item in enumerate(items_of(body, "hits", self.name, call))
                if (c := self._video(item, rank, ctx.spec)) is not None
            ]
        call = "photo search"
        params["image_type"] = "photo"
        shape = orientation(ctx.spec)
        if shape != "square":
            params["orientation"] = "horizontal" if shape == "landscape" else "vertical"
        body = client.json(call, "GET", "", params=params)
        return [
            c
            for rank, item in enumerate(items_of(body, "hits", self.name, call))
            if (c := self._photo(item, rank, ctx.spec)) is not None
        ]

    @staticmethod
    def _author(item: Mapping[str, Any]) -> tuple[str | None, str | None]:
        user, user_id = as_str(item.get("user")), as_int(item.get("user_id"))
        url = f"https://pixabay.com/users/{user}-{user_id}/" if user and user_id else None
        return user, url

    def _video(self, item: Mapping[str, Any], rank: int, spec: RenderSpec) -> Candidate | None:
        videos = item.get("videos")
        renditions = [
            Rendition(v["url"], as_int(v.get("width")), as_int(v.get("height")))
            for v in (videos.values() if isinstance(videos, dict) else [])
            if isinstance(v, dict) and isinstance(v.get("url"), str)
        ]
        rendition = pick_rendition(renditions, spec)
        if rendition is None or not as_int(item.get("id")):
            return None
        author, author_url = self._author(item)
        duration = item.get("duration")
        return Candidate(
            kind="video",
            id=str(item["id"]),
            rendition=rendition,
            duration=float(duration) if isinstance(duration, int | float) else None,
            page_url=as_str(item.get("pageURL")),
            author=author,
            author_url=author_url,
            rank=rank,
        )

    def _photo(self, item: Mapping[str, Any], rank: int, spec: RenderSpec) -> Candidate | None:
        width, height = as_int(item.get("imageWidth")), as_int(item.get("imageHeight"))
        if not (width and height and as_int(item.get("id"))):
            return None
        # largeImageURL is at most 1280 px on its long side; accounts with full
        # API access also get fullHDURL (1920) and imageURL (the original).
        renditions = []
        for field, longest in (("imageURL", None), ("fullHDURL", 1920), ("largeImageURL", 1280)):
            url = as_str(item.get(field))
            if url is None:
                continue
            scale = 1.0 if longest is None else min(1.0, longest / max(width, height))
            renditions.append(Rendition(url, round(width * scale), round(height * scale)))
        rendition = pick_rendition(renditions, spec)
        if rendition is None:
            return None
        author, author_url = self._author(item)
        return Candidate(
            kind="photo",
            id=str(item["id"]),
            rendition=rendition,
            duration=None,
            page_url=as_str(item.get("pageURL")),
            author=author,
            author_url=author_url,
            rank=rank,
        )


if TYPE_CHECKING:  # both must satisfy the stage's protocol (checked by mypy)
    _pexels: VisualRenderer = PexelsRenderer()
    _pixabay: VisualRenderer = PixabayRenderer()
