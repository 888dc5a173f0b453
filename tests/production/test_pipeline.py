"""The whole engine end to end, checked by probing the real output files."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import pytest

from aiprod.production import backends
from aiprod.production.cache import file_digest
from aiprod.production.media.loudness import integrated_loudness
from aiprod.production.media.probe import decode_audio, probe
from aiprod.production.models import ProductionRequest, Storyboard
from aiprod.production.pipeline import Cancelled, Pipeline, ProgressEvent, QAFailed
from aiprod.production.subtitles import parse_srt, parse_vtt
from aiprod.settings import Settings

SCRIPT = """[scene]
Honeybees leave the hive at dawn.
TEXT: Dawn

[scene]
They visit hundreds of flowers for nectar.
TRANSITION: slide

[scene]
Back home, the nectar slowly becomes honey."""


def request(**kw: object) -> ProductionRequest:
    base: dict[str, object] = {
        "script": SCRIPT,
        "resolution": "480p",
        "fps": 24,
        "aspect": "16:9",
        "preset": "quick_social",
        "music": "calm",
    }
    base.update(kw)
    return ProductionRequest.model_validate(base)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings, list[ProgressEvent]]:
    root = tmp_path_factory.mktemp("prod")
    settings = Settings(data_dir=root / "data")
    events: list[ProgressEvent] = []
    Pipeline(request(), root / "out", settings=settings, on_progress=events.append).run()
    return root / "out", settings, events


def test_output_is_a_real_narrated_video(made: tuple[Path, Settings, list]) -> None:  # type: ignore[type-arg]
    out, _, _ = made
    sb = Storyboard.model_validate_json((out / "storyboard.json").read_text())
    info = probe(out / "video.mp4")
    assert (info.width, info.height, round(info.fps)) == (854, 480, 24)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert info.has_audio and info.faststart
    assert info.duration == pytest.approx(sb.duration, rel=0.05)
    assert info.audio_duration == pytest.approx(info.duration, abs=0.1)
    samples, rate = decode_audio(out / "video.mp4")
    assert integrated_loudness(samples, rate) == pytest.approx(-14.0, abs=1.0)
    with av.open(str(out / "poster.jpg")) as poster:
        frame = next(poster.decode(video=0))
        assert (frame.width, frame.height) == (854, 480)
    assert len(list((out / "thumbs").glob("thumb_*.jpg"))) == len(sb.scenes)


def test_subtitles_cover_the_narration(made: tuple[Path, Settings, list]) -> None:  # type: ignore[type-arg]
    out, _, _ = made
    srt = parse_srt((out / "subtitles.srt").read_text())
    vtt = parse_vtt((out / "subtitles.vtt").read_text())
    assert [c.text for c in srt] == [c.text for c in vtt]
    words = " ".join(c.text for c in srt).replace("\n", " ").lower()
    for w in ("honeybees", "hundreds", "nectar", "honey"):
        assert w in words
    assert all(a.end <= b.start for a, b in itertools.pairwise(srt))


def test_provenance_files(made: tuple[Path, Settings, list]) -> None:  # type: ignore[type-arg]
    out, _, _ = made
    manifest = json.loads((out / "manifest.json").read_text())
    qa = json.loads((out / "qa.json").read_text())
    cost = json.loads((out / "cost.json").read_text())
    assert qa["passed"] is True and {c["name"] for c in qa["checks"]} >= {"duration", "loudness"}
    assert cost["estimate"]["total"] >= 0 and len(cost["actual"]) == 6
    listed = {a["path"]: a for a in manifest["assets"]}
    for name in (
        "video.mp4",
        "subtitles.srt",
        "poster.jpg",
        "storyboard.json",
        "qa.json",
        "work/music.wav",
        "work/clips/scene_000.mp4",
        "work/narration/scene_002.wav",
    ):
        assert name in listed, name
        assert listed[name]["sha256"] == file_digest(out / name)
    assert listed["video.mp4"]["made_by"] == {"backend": "pyav", "version": "2"}
    assert listed["work/narration/scene_000.wav"]["made_by"]["backend"] == "builtin"
    assert manifest["backends"]["visuals"]["backend"] == "motion"


def test_progress_reports_every_stage_in_order(made: tuple[Path, Settings, list]) -> None:  # type: ignore[type-arg]
    _, _, events = made
    completed = [e.stage for e in events if e.status == "completed"]
    assert completed == ["plan", "narrate", "visuals", "music", "montage", "qa"]
    overall = [e.overall for e in events]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)
    assert any(e.eta is not None for e in events)


def test_second_run_is_served_from_cache(made: tuple[Path, Settings, list], tmp_path: Path) -> None:  # type: ignore[type-arg]
    _, settings, _ = made
    p = Pipeline(request(), tmp_path / "again", settings=settings)
    p.run()
    for stage in ("narrate", "visuals", "music", "montage"):
        assert p.stats[stage]["misses"] == 0, (stage, p.stats)
        assert p.stats[stage]["hits"] >= 1
    assert probe(tmp_path / "again" / "video.mp4").has_audio


def test_editing_one_scene_rerenders_only_that_scene(
    made: tuple[Path, Settings, list],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    out, settings, _ = made
    sb = Storyboard.model_validate_json((out / "storyboard.json").read_text())
    sb.scenes[1].on_screen_text = "Nectar run"
    p = Pipeline(request(), tmp_path / "edited", settings=settings)
    p.run(storyboard=sb)
    assert p.stats["narrate"] == {"hits": 3, "misses": 0}
    assert p.stats["visuals"] == {"hits": 2, "misses": 1}
    assert p.stats["montage"] == {"hits": 0, "misses": 1}
    old = (out / "work/clips/scene_000.mp4").stat().st_ino
    assert (tmp_path / "edited/work/clips/scene_000.mp4").stat().st_ino == old  # same cache file


def test_new_voice_for_one_scene_renarrates_only_it(
    made: tuple[Path, Settings, list],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    out, settings, _ = made
    sb = Storyboard.model_validate_json((out / "storyboard.json").read_text())
    sb.scenes[2].voice = sb.scenes[2].voice or request().voice.model_copy(update={"pitch": 20})
    p = Pipeline(request(), tmp_path / "voice", settings=settings)
    p.run(storyboard=sb)
    assert p.stats["narrate"] == {"hits": 2, "misses": 1}
    assert p.stats["visuals"]["misses"] <= 1


class BlackRenderer:
    """A visuals backend that renders nothing but black: QA must catch it."""

    name = "black"
    version = "1"

    def render(self, scene, ctx, out, progress):  # type: ignore[no-untyped-def]
        import numpy as np

        from aiprod.production.media.video import mezzanine_writer

        frame = np.zeros((ctx.spec.height, ctx.spec.width, 3), np.uint8)
        with mezzanine_writer(out, ctx.spec) as w:
            for _ in range(ctx.spec.frames(scene.duration)):
                w.write(frame)


def test_failed_qa_fails_the_production_with_the_report(settings: Settings, tmp_path: Path) -> None:
    backends.register("visuals", "black", f"{__name__}:BlackRenderer")
    with pytest.raises(QAFailed, match="black") as info:
        Pipeline(request(backends={"visuals": "black"}), tmp_path / "o", settings=settings).run()
    report = json.loads((tmp_path / "o" / "qa.json").read_text())
    assert report["passed"] is False
    assert any(c["name"] == "no_black_scenes" and not c["passed"] for c in report["checks"])
    assert info.value.report.failures


def test_cancel_stops_and_leaves_no_video(settings: Settings, tmp_path: Path) -> None:
    seen: list[str] = []

    def on_progress(e: ProgressEvent) -> None:
        seen.append(e.stage)

    p = Pipeline(
        request(),
        tmp_path / "c",
        settings=settings,
        on_progress=on_progress,
        should_cancel=lambda: "visuals" in seen,
    )
    with pytest.raises(Cancelled):
        p.run()
    assert not (tmp_path / "c" / "video.mp4").exists()
    assert "montage" not in seen


def test_unknown_backend_is_refused(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown narrate backend 'nope'"):
        Pipeline(request(backends={"narrate": "nope"}), tmp_path, settings=settings)


def test_identical_units_in_different_scenes_share_one_cache_entry(
    settings: Settings, tmp_path: Path
) -> None:
    """Two scenes with the same narration are one unit of work: the second is a
    cache hit even though its file has another name."""
    script = "[scene]\nThe same words.\n[scene]\nThe same words.\n[scene]\nOther words here."
    p = Pipeline(request(script=script, music=None), tmp_path / "o", settings=settings)
    p.run()
    assert p.stats["narrate"] == {"hits": 1, "misses": 2}
    a, b = (
        (tmp_path / "o/work/narration/scene_000.wav"),
        (tmp_path / "o/work/narration/scene_001.wav"),
    )
    assert a.read_bytes() == b.read_bytes()


def test_music_composed_during_visuals_is_the_same_and_charged_to_music(
    made: tuple[Path, Settings, list],  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    """The music bed is composed on a helper thread while the visuals render; the
    result must be the bed a plain composition makes, its CPU time must show
    under music in cost.json (not under visuals), and no temporary file stays."""
    out, _, _ = made
    sb = Storyboard.model_validate_json((out / "storyboard.json").read_text())
    direct = tmp_path / "direct.wav"
    backends.get("music").compose("calm", sb.duration, sb.seed, direct)
    assert file_digest(out / "work/music.wav") == file_digest(direct)
    cost = json.loads((out / "cost.json").read_text())
    music = next(a for a in cost["actual"] if a["stage"] == "music")
    assert music["cache"] == {"hits": 0, "misses": 1}
    # A composition costs real CPU; moving a finished file would cost ~nothing.
    assert music["cpu_seconds"] > 0.05
    assert not (out / "work/tmp/music-ahead.wav").exists()


def test_failing_music_helper_fails_the_music_stage(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    composer = backends.get("music")

    def broken(*_: object) -> None:
        raise RuntimeError("synth exploded")

    monkeypatch.setattr(composer, "compose", broken)
    settings = Settings(data_dir=tmp_path / "data")
    p = Pipeline(request(), tmp_path / "o", settings=settings)
    with pytest.raises(RuntimeError, match="synth exploded"):
        p.run()
    assert p.done_stages() == ["plan", "narrate", "visuals"]
    assert not (tmp_path / "o/work/tmp/music-ahead.wav").exists()
