"""Stock visuals (Pexels, Pixabay) against local servers speaking each library's
wire format: the request shapes (key in a header or the query, orientation by
the video's shape), the choice of asset, broader searches, de-duplication,
guarded downloads, and the credits a production keeps (sidecars, credits.txt,
the manifest's sources, the end card)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from aiprod import ssrf
from aiprod.production.backends.motion import MotionRenderer
from aiprod.production.models import QAReport, RenderSpec, Scene
from aiprod.production.provenance import write_manifest
from aiprod.production.providers import ProviderError, download, use_settings
from aiprod.production.providers.stock import (
    public_url,
    queries,
)
from aiprod.production.providers.stock_services import PexelsRenderer, PixabayRenderer
from aiprod.production.stages import visuals
from aiprod.production.stages.visuals import AssetSource, credits_line, read_source
from aiprod.provider_config import ProviderConfig
from aiprod.settings import Settings

from .conftest import FAKE_KEY
from .stock_server import (
    TINY,
    clip,
    pexels_photo,
    pexels_photos,
    pexels_video,
    pexels_videos,
    picture,
    pixabay_hits,
    pixabay_photo,
    pixabay_video,
    scene_context,
    serve,
    stage_context,
    storyboard,
)
from .wire import LocalService, Recorded, Reply

Settings_ = Callable[..., Settings]
HD = RenderSpec(width=1280, height=720, fps=24, quality="draft")


def content(text: str = "Honeybees leave the hive at dawn", **kw: Any) -> Scene:
    return Scene(index=1, visual=text, narration=text, duration=kw.pop("duration", 1.0), **kw)


def frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# ------------------------------------------------------------ Pexels: search


@pytest.mark.parametrize(
    ("size", "shape"),
    [((320, 180), "landscape"), ((180, 320), "portrait"), ((240, 240), "square")],
)
def test_pexels_searches_videos_with_its_key_header_in_the_video_shape(
    local_service: LocalService,
    provider_settings: Settings_,
    size: tuple[int, int],
    shape: str,
) -> None:
    provider_settings(pexels=local_service.url)
    w, h = size
    video = pexels_video(local_service, 7, duration=10, files=[(w * 2, h * 2)])
    local_service.route("GET", "/videos/search", [Reply(200, pexels_videos([video]))])
    spec = RenderSpec(width=w, height=h, fps=24, quality="draft")
    pick = PexelsRenderer().choose(content(search_terms=["bee hive"]), scene_context(spec))
    assert (pick.candidate.kind, pick.candidate.id, pick.query) == ("video", "7", "bee hive")
    (call,) = local_service.calls("GET", "/videos/search")
    assert call.headers["authorization"] == FAKE_KEY  # the key itself, no "Bearer"
    assert call.query == {"query": ["bee hive"], "orientation": [shape], "per_page": ["15"]}
    # A fitting video was found: no photo search.
    assert local_service.calls("GET", "/v1/search") == []


def test_pexels_asks_for_full_hd_videos_for_a_1080p_video(
    local_service: LocalService, provider_settings: Settings_
) -> None:
    provider_settings(pexels=local_service.url)
    local_service.route(
        "GET", "/videos/search", [Reply(200, pexels_videos([pexels_video(local_service, 1)]))]
    )
    full_hd = RenderSpec(width=1920, height=1080, fps=24, quality="draft")
    PexelsRenderer().choose(content(), scene_context(full_hd))
    PexelsRenderer().choose(content(), scene_context(HD))
    sizes = [r.query.get("size") for r in local_service.calls("GET", "/videos/search")]
    assert sizes == [["medium"], ["small"]]


def test_the_best_video_is_long_enough_fits_the_frame_and_is_the_smallest_download(
    local_service: LocalService, provider_settings: Settings_
) -> None:
    provider_settings(pexels=local_service.url)
    videos = [
        pexels_video(local_service, 1, duration=3),  # too short: would loop
        pexels_video(local_service, 2, duration=20, files=[(1080, 1920)]),  # portrait
        pexels_video(local_service, 3, duration=20, files=[(640, 360)]),  # too small
        pexels_video(local_service, 4, duration=90, files=[(3840, 2160)]),  # 4K only
        pexels_video(local_service, 5, duration=8),  # 640x360, 1280x720, 1920x1080
    ]
    local_service.route("GET", "/videos/search", [Reply(200, pexels_videos(videos))])
    pick = PexelsRenderer().choose(content(duration=6.0), scene_context(HD))
    assert pick.candidate.id == "5"
    # The smallest rendition that covers 1280x720.
    assert pick.candidate.rendition.url.endswith("/videos/5/1280x720.mp4")
    assert (pick.candidate.author, pick.candidate.page_url) == (
        "Videographer 5",
        "https://www.pexels.com/video/v-5/",
    )


def test_a_photo_when_no_video_fits(
    local_service: LocalService, provider_settings: Settings_
) -> None:
    provider_settings(pexels=local_service.url)
    short = pexels_video(local_service, 1, duration=2)
    local_service.route("GET", "/videos/search", [Reply(200, pexels_videos([short]))])
    photos = [
        pexels_photo(local_service, 10, size=(900, 600)),  # too small for 720p
        pexels_photo(local_service, 11, size=(4000, 2250)),
    ]
    local_service.route("GET", "/v1/search", [Reply(200, pexels_photos(photos))])
    pick = PexelsRenderer().choose(content(duration=5.0), scene_context(HD))
    assert (pick.candidate.kind, pick.candidate.id) == ("photo", "11")
    # large2x (1880 px wide) covers 1280x720: no need for the original.
    assert "/photos/11/large2x.jpg" in pick.candidate.rendition.url
    (call,) = local_service.calls("GET", "/v1/search")
    assert call.query["orientation"] == ["landscape"]
    # For a 1080p frame, large2x is too small: the original is fetched.
    full_hd = RenderSpec(width=1920, height=1080, fps=24, quality="draft")
    pick = PexelsRenderer().choose(content(duration=5.0), scene_context(full_hd))
    assert pick.candidate.rendition.url.endswith("/photos/11/original.jpg")


def test_a_search_without_results_gives_way_to_broader_terms(
    local_service: LocalService, provider_settings: Settings_
) -> None:
    provider_settings(pexels=local_service.url)

    def videos(rec: Recorded) -> Reply:
        found = [pexels_video(local_service, 3)] if rec.query["query"] == ["swarm"] else []
        return Reply(200, pexels_videos(found))

    local_service.route("GET", "/videos/search", videos)
    local_service.route("GET", "/v1/search", [Reply(200, pexels_photos([]))])
    pick = PexelsRenderer().choose(content(search_terms=["golden honeybee swarm"]), scene_context())
    assert pick.query == "swarm" and pick.candidate.id == "3"
    asked = [r.query["query"][0] for r in local_service.calls("GET", "/videos/search")]
    assert asked == ["golden honeybee swarm", "honeybee swarm", "swarm"]


def test_a_search_finding_nothing_that_fits_the_frame_tries_broader_terms_first(
    local_service: LocalService, provider_settings: Settings_
) -> None:
    provider_settings(pexels=local_service.url)

    def videos(rec: Recorded) -> Reply:
        if rec.query["query"] == ["honeybee swarm"]:  # only a small clip
            return Reply(200, pexels_videos([pexels_video(local_service, 1, files=[(640, 360)])]))
        if rec.query["query"] == ["swarm"]:
            return Reply(200, pexels_videos([pexels_video(local_service, 2)]))
        return Reply(200, pexels_videos([]))

    local_service.route("GET", "/videos/search", videos)
    local_service.route("GET", "/v1/search", [Reply(200, pexels_photos([]))])
    pick = PexelsRenderer().choose(content(search_terms=["honeybee swarm"]), scene_context(HD))
    assert (pick.candidate.id, pick.query) == ("2", "swarm")
    # Nothing fits anywhere: the narrowest search's find, upscaled, beats no picture.
    local_service.route("GET", "/videos/search", [Reply(200, pexels_videos([]))])
    local_service.route(
        "GET",
        "/v1/search",
        [Reply(200, pexels_photos([pexels_photo(local_service, 5, size=(800, 450))]))],
    )
    pick = PexelsRenderer().choose(content(search_terms=["honeybee swarm"]), scene_context(HD))
    assert (pick.candidate.id, pick.query) == ("5", "honeybee swarm")


def test_without_search_terms_the_scene_keywords_are_searched_fewer_and_fewer(
    local_service: LocalService, provider_settings: Settings_
) -> None:
    provider_settings(pexels=local_service.url)
    local_service.route("GET", "/videos/search", [Reply(200, pexels_videos([]))])
    local_service.route("GET", "/v1/search", [Reply(200, pexels_photos([]))])
    with pytest.raises(ProviderError) as info:
        PexelsRenderer().choose(content("Honeybees leave the hive at dawn"), scene_context())
    assert (info.value.provider, info.value.call) == ("pexels", "search")
    assert "no stock result for 'honeybees leave hive'" in str(info.value)
    asked = [r.query["query"][0] for r in local_service.calls("GET", "/videos/search")]
    assert asked == ["honeybees leave hive", "honeybees leave", "honeybees"]
    # The scene's own words go with their language (French narration: fr-FR).
    french = content("Les abeilles quittent la ruche à l'aube")
    assert queries(french, "fr")[0].text == "abeilles quittent ruche"
    local_service.requests.clear()
    with pytest.raises(ProviderError):
        PexelsRenderer().choose(french, scene_context(language="fr"))
    assert local_service.calls("GET", "/videos/search")[0].query["locale"] == ["fr-FR"]


def test_an_answer_of_the_wrong_shape_is_a_provider_error(
    local_service: LocalService, provider_settings: Settings_
) -> None:
    provider_settings(pexels=local_service.url)
    local_service.route("GET", "/videos/search", [Reply(200, {"oops": []})])
    with pytest.raises(ProviderError, match="pexels video search failed: unexpected answer"):
        PexelsRenderer().choose(content(), scene_context())


# ------------------------------------------------------------ Pexels: stage


def _pexels_library(service: LocalService, count: int = 3) -> None:
    """`count` short clips, each long enough for a 1 s scene, served locally."""
    items = []
    for i in range(count):
        items.append(
            pexels_video(service, 100 + i, duration=5, files=[(480, 270)], author=f"Ann {i}")
        )
        serve(service, f"/videos/{100 + i}/480x270.mp4", clip(level=40 + 60 * i), "video/mp4")
    service.route("GET", "/videos/search", [Reply(200, pexels_videos(items))])


def test_a_production_shows_a_different_stock_clip_per_scene_and_credits_them(
    local_service: LocalService, provider_settings: Settings_, tmp_path: Path
) -> None:
    provider_settings(pexels=local_service.url)
    _pexels_library(local_service)
    sb = storyboard(
        {"visual": "Bees at the hive", "on_screen_text": "Busy bees"},
        {"visual": "Bees at the hive"},  # the same search: must not show the same clip
    )
    ctx = stage_context(tmp_path, "pexels")
    clips = visuals.run(ctx, sb)

    assert [frames(c) for c in clips] == [24] * 4
    fetched = [r.path for r in local_service.requests if r.path.endswith(".mp4")]
    assert fetched == ["/videos/100/480x270.mp4", "/videos/101/480x270.mp4"]
    # Cards are motion graphics: no search for them, no sidecar.
    assert len(local_service.calls("GET", "/videos/search")) == 2
    sidecars = sorted(p.name for p in (ctx.work / "clips").glob("*.json"))
    assert sidecars == ["scene_001.json", "scene_002.json"]
    first = read_source(ctx.work / "clips" / "scene_001.json")
    assert first == AssetSource(
        provider="pexels",
        kind="video",
        id="100",
        page_url="https://www.pexels.com/video/v-100/",
        media_url=f"{local_service.url}/videos/100/480x270.mp4",
        author="Ann 0",
        author_url="https://www.pexels.com/@v100",
        licence="Pexels License",
        licence_url="https://www.pexels.com/license/",
        attribution_required=False,
        credit="Ann 0 (Pexels)",
        query="bees hive busy",
    )
    credits = (ctx.outdir / "credits.txt").read_text()
    assert credits.startswith("Photos and videos: Ann 0 (Pexels), Ann 1 (Pexels).\n")
    assert "scene 2: video 100 (pexels) — by Ann 0 <https://www.pexels.com/@v100>" in credits
    assert "Pexels License <https://www.pexels.com/license/>" in credits
    assert set(ctx.stage_files("visuals")) >= {
        Path("credits.txt"),
        Path("work/clips/scene_001.json"),
    }

    write_manifest(ctx, sb, QAReport(passed=True, checks=[]))
    manifest = json.loads((ctx.outdir / "manifest.json").read_text())
    assert [(s["scene"], s["id"], s["author"], s["licence"]) for s in manifest["sources"]] == [
        (1, "100", "Ann 0", "Pexels License"),
        (2, "101", "Ann 1", "Pexels License"),
    ]
    stages = {a["path"]: a["stage"] for a in manifest["assets"]}
    assert stages["credits.txt"] == stages["work/clips/scene_001.json"] == "visuals"
    for path in ctx.outdir.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path

    # Again, from the cache: nothing searched or fetched, the sources kept, and
    # de-duplication still knows what the earlier scenes show.
    local_service.requests.clear()
    again = stage_context(tmp_path / "again", "pexels")
    again.cache = ctx.cache
    visuals.run(again, sb)
    assert local_service.requests == []
    assert again.stats["visuals"] == {"hits": 4, "misses": 0}
    assert (again.outdir / "credits.txt").read_text() == credits
    assert read_source(again.work / "clips" / "scene_002.json") == read_source(
        ctx.work / "clips" / "scene_002.json"
    )


def test_the_end_card_credits_the_stock_authors(
    local_service: LocalService, provider_settings: Settings_, tmp_path: Path
) -> None:
    provider_settings(pexels=local_service.url)
    _pexels_library(local_service, count=1)
    sb = storyboard({"visual": "Bees at the hive"})
    ctx = stage_context(tmp_path, "pexels", cache=False)
    clips = visuals.run(ctx, sb)
    # The end card as the motion backend draws it without credits.
    plain = tmp_path / "plain.mp4"
    end = sb.scenes[-1]
    MotionRenderer().render(end, scene_context(), plain, lambda _: None)

    def last(path: Path) -> np.ndarray[Any, Any]:
        with av.open(str(path)) as container:
            return [f.to_ndarray(format="gray") for f in container.decode(video=0)][-1]

    credited, bare = last(clips[-1]).astype(int), last(plain).astype(int)
    h = credited.shape[0]
    # The credits line lies in the bottom of the safe area, and only there.
    assert (
        np.abs(credited[int(h * 0.75) : int(h * 0.93)] - bare[int(h * 0.75) : int(h * 0.93)]).max()
        > 60
    )
    assert np.abs(credited[int(h * 0.94) :] - bare[int(h * 0.94) :]).max() < 40
    assert credits_line([read_source(ctx.work / "clips/scene_001.json")]) == (  # type: ignore[list-item]
        "Photos & videos: Ann 0 (Pexels)"
    )


def test_user_media_and_cards_stay_motion_graphics(
    local_service: LocalService, provider_settings: Settings_, tmp_path: Path
) -> None:
    provider_settings(pexels=local_service.url)
    photo = tmp_path / "mine.jpg"
    photo.write_bytes(picture())
    sb = storyboard({"visual": "Bees", "media": {"scene": 1, "path": str(photo)}})
    ctx = stage_context(tmp_path, "pexels")
    (ctx.work / "clips").mkdir(parents=True)
    (ctx.work / "clips" / "scene_001.json").write_text("{}")  # a stale sidecar
    (ctx.outdir / "credits.txt").write_text("stale")
    visuals.run(ctx, sb)
    assert local_service.requests == []
    assert list((ctx.work / "clips").glob("*.json")) == []
    assert not (ctx.outdir / "credits.txt").exists()


# ------------------------------------------------------------------ Pixabay


@pytest.mark.parametrize(
    ("size", "shape"),
    [((320, 180), "horizontal"), ((180, 320), "vertical"), ((240, 240), None)],
)
def test_pixabay_puts_its_key_in_the_query_and_searches_photos_in_the_video_shape(
    local_service: LocalService,
    provider_settings: Settings_,
    size: tuple[int, int],
    shape: str | None,
) -> None:
    provider_settings(pixabay=local_service.url + "/api")
    local_service.route("GET", "/api/videos/", [Reply(200, pixabay_hits([]))])
    w, h = size
    photo = pixabay_photo(local_service, 4, size=(w * 2, h * 2))
    local_service.route("GET", "/api/", [Reply(200, pixabay_hits([photo]))])
    spec = RenderSpec(width=w, height=h, fps=24, quality="draft")
    pick = PixabayRenderer().choose(content(search_terms=["bees"]), scene_context(spec))
    assert (pick.candidate.kind, pick.candidate.id) == ("photo", "4")
    assert pick.candidate.rendition.url.endswith("/pix/4_1280.jpg")
    (videos,) = local_service.calls("GET", "/api/videos/")
    assert videos.query == {
        "q": ["bees"],
        "safesearch": ["true"],
        "per_page": ["15"],
        "video_type": ["film"],
        "key": [FAKE_KEY],
    }
    (photos,) = local_service.calls("GET", "/api/")
    expected = {
        "q": ["bees"],
        "safesearch": ["true"],
        "per_page": ["15"],
        "image_type": ["photo"],
        "key": [FAKE_KEY],
    }
    if shape is not None:
        expected["orientation"] = [shape]
    assert photos.query == expected
    assert "authorization" not in photos.headers


def test_pixabay_videos_take_the_smallest_rendition_covering_the_frame(
    local_service: LocalService, provider_settings: Settings_, tmp_path: Path
) -> None:
    provider_settings(pixabay=local_service.url + "/api")
    local_service.route(
        "GET", "/api/videos/", [Reply(200, pixabay_hits([pixabay_video(local_service, 8)]))]
    )
    pick = PixabayRenderer().choose(content(), scene_context(HD))
    assert pick.candidate.rendition.url.endswith("/pixv/8_small.mp4")  # 1280x720
    pick = PixabayRenderer().choose(content(), scene_context())
    assert pick.candidate.rendition.url.endswith("/pixv/8_tiny.mp4")  # 960x540 for 320x180

    # Rendered: the clip has the scene's frames, the sidecar names the author.
    serve(local_service, "/pixv/8_tiny.mp4", clip(), "video/mp4")
    out = tmp_path / "scene_001.mp4"
    PixabayRenderer().render(content(), scene_context(), out, lambda _: None)
    assert frames(out) == TINY.frames(1.0)
    source = read_source(tmp_path / "scene_001.json")
    assert source is not None
    assert (source.author, source.author_url, source.licence) == (
        "pixfilm8",
        "https://pixabay.com/users/pixfilm8-908/",
        "Pixabay Content License",
    )
    assert source.credit == "pixfilm8 (Pixabay)"
    assert FAKE_KEY not in source.model_dump_json()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene_001.json", "scene_001.mp4"]


def test_pixabay_errors_never_show_the_key(
    local_service: LocalService, provider_settings: Settings_
) -> None:
    provider_settings(pixabay=local_service.url + "/api")
    local_service.route(
        "GET",
        "/api/videos/",
        [Reply(400, f"[ERROR 400] Invalid or missing API key ({FAKE_KEY}).".encode())],
    )
    with pytest.raises(ProviderError) as info:
        PixabayRenderer().choose(content(), scene_context())
    assert info.value.status == 400 and FAKE_KEY not in str(info.value)
    assert "***" in str(info.value)


def test_urls_lose_query_parameters_that_could_carry_a_key() -> None:
    url = f"https://cdn.example/v.mp4?key={FAKE_KEY}&w=940&X-Amz-Signature=abc&token=t"
    assert public_url(url) == "https://cdn.example/v.mp4?w=940"
    assert public_url("https://cdn.example/p.jpg?w=940") == "https://cdn.example/p.jpg?w=940"
    assert public_url(None) is None


# ---------------------------------------------------------------- downloads


def _one_video_at(service: LocalService, link: str) -> None:
    video = pexels_video(service, 9, duration=5, files=[(480, 270)])
    video["video_files"][0]["link"] = link
    service.route("GET", "/videos/search", [Reply(200, pexels_videos([video]))])


def _strict_settings(service: LocalService, tmp_path: Path, **kw: Any) -> Settings:
    """Provider downloads as deployed: private addresses refused."""
    return Settings(
        data_dir=tmp_path / "data",
        pexels=ProviderConfig(base_url=service.url, api_key=FAKE_KEY, max_retries=0),
        **kw,
    )


def test_a_redirect_to_a_private_address_is_refused(
    local_service: LocalService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = local_service.url.rsplit(":", 1)[1]
    # cdn.example.com stands for a public CDN host (it is this local server).
    real = ssrf.resolve_sync
    monkeypatch.setattr(
        download,
        "resolve_sync",
        lambda target, allow: (
            "127.0.0.1" if target.host == "cdn.example.com" else real(target, allow)
        ),
    )
    _one_video_at(local_service, f"http://cdn.example.com:{port}/v/9.mp4")
    local_service.route(
        "GET", "/v/9.mp4", [Reply(302, b"", {"location": f"{local_service.url}/internal.mp4"})]
    )
    serve(local_service, "/internal.mp4", clip(), "video/mp4")
    settings = _strict_settings(local_service, tmp_path)
    assert settings.provider_allow_private_networks is False
    out = tmp_path / "scene_001.mp4"
    with use_settings(settings), pytest.raises(ProviderError) as info:
        PexelsRenderer().render(content(), scene_context(), out, lambda _: None)
    assert (info.value.provider, info.value.call) == ("pexels", "download")
    assert "refused URL" in str(info.value)
    assert local_service.calls("GET", "/v/9.mp4") and not local_service.calls(
        "GET", "/internal.mp4"
    )
    assert list(tmp_path.glob("scene_001*")) == []


def test_an_asset_larger_than_allowed_is_refused(
    local_service: LocalService, tmp_path: Path
) -> None:
    _one_video_at(local_service, f"{local_service.url}/big.mp4")
    serve(local_service, "/big.mp4", b"\0" * 5000, "video/mp4")
    settings = _strict_settings(
        local_service,
        tmp_path,
        provider_allow_private_networks=True,
        provider_download_max_bytes=2048,
    )
    with use_settings(settings), pytest.raises(ProviderError) as info:
        PexelsRenderer().render(content(), scene_context(), tmp_path / "c.mp4", lambda _: None)
    assert (info.value.provider, info.value.call) == ("pexels", "download")
    assert "5000 bytes, over 2048" in str(info.value)


def test_an_asset_of_the_wrong_type_or_unreadable_is_refused(
    local_service: LocalService, provider_settings: Settings_, tmp_path: Path
) -> None:
    provider_settings(pexels=local_service.url)
    _one_video_at(local_service, f"{local_service.url}/page.mp4")
    serve(local_service, "/page.mp4", b"<html>hello</html>", "text/html")
    with pytest.raises(ProviderError, match="pexels download failed: unexpected media type"):
        PexelsRenderer().render(content(), scene_context(), tmp_path / "c.mp4", lambda _: None)
    serve(local_service, "/page.mp4", b"not really a video", "video/mp4")
    with pytest.raises(ProviderError, match="the video 9 it served cannot be read"):
        PexelsRenderer().render(content(), scene_context(), tmp_path / "c.mp4", lambda _: None)
    assert list(tmp_path.iterdir()) == []
