"""Request validation: every bad combination gets a precise error."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from aiprod.production.models import ProductionRequest, Scene, Storyboard, render_spec


def errors(**kw: object) -> str:
    with pytest.raises(ValidationError) as info:
        ProductionRequest.model_validate(kw)
    return str(info.value)


def test_prompt_or_script_exactly_one() -> None:
    assert "exactly one of 'prompt' or 'script'" in errors()
    assert "exactly one" in errors(prompt="bees and honey", script="Bees. Honey.")
    assert ProductionRequest(prompt="bees and honey").script is None


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("duration", 4, "greater than or equal to 5"),
        ("duration", 301, "less than or equal to 300"),
        ("aspect", "4:3", "'16:9', '9:16' or '1:1'"),
        ("resolution", "4k", "'480p', '720p' or '1080p'"),
        ("fps", 60, "24, 25 or 30"),
        ("music", "polka", "uplifting"),
        ("preset", "cheap", "quick_social"),
        ("budget", 0, "greater than 0"),
        ("language", "en us", "pattern"),
        ("owner", "someone", "Extra inputs are not permitted"),
        ("backends", {"paint": "x"}, "unknown stage"),
        ("prompt", "   ", "must not be blank"),
    ],
)
def test_field_errors(field: str, value: object, needle: str) -> None:
    kw: dict[str, object] = {"prompt": "bees and honey", field: value}
    if field == "prompt":
        kw = {"prompt": value}
    message = errors(**kw)
    assert field in message
    assert needle in message


def test_preset_caps() -> None:
    assert "exceeds the quick_social preset's cap of 60s" in errors(
        prompt="bees", preset="quick_social", duration=90
    )
    assert "not offered by the premium_spot preset" in errors(
        prompt="bees", preset="premium_spot", resolution="480p"
    )
    assert ProductionRequest(prompt="bees", preset="premium_spot", duration=300).duration == 300


def test_voice_and_style_bounds() -> None:
    assert "rate" in errors(prompt="bees", voice={"rate": 20})
    assert "pitch" in errors(prompt="bees", voice={"pitch": 120})
    assert "name" in errors(prompt="bees", voice={"name": "en; rm -rf /"})
    assert "palette colours must be #rrggbb" in errors(
        prompt="bees", style={"palette": ["#fff", "red"]}
    )
    assert "2 to 6 colours" in errors(prompt="bees", style={"palette": ["#ffffff"]})
    assert "color must be #rrggbb" in errors(prompt="bees", subtitles={"color": "white"})


def test_media_rules() -> None:
    assert "unsupported media type .txt" in errors(
        prompt="bees", media=[{"scene": 0, "path": "notes.txt"}]
    )
    assert "scene 1 has more than one media file" in errors(
        prompt="bees",
        media=[{"scene": 1, "path": "a.png"}, {"scene": 1, "path": "b.mp4"}],
    )
    r = ProductionRequest.model_validate(
        {"prompt": "bees", "media": [{"scene": 0, "path": "a.MOV"}, {"scene": 1, "path": "b.jpg"}]}
    )
    assert [m.kind for m in r.media] == ["video", "image"]
    assert r.media[0].path == Path("a.MOV")


def test_target_duration_comes_from_preset() -> None:
    assert ProductionRequest(prompt="bees", preset="quick_social").target_duration == 20
    assert ProductionRequest(prompt="bees", duration=12).target_duration == 12


def test_scene_and_storyboard_rules() -> None:
    with pytest.raises(ValidationError, match="does not fit"):
        Scene(index=0, duration=1.0, transition="crossfade", transition_duration=0.8)
    Scene(index=0, duration=1.0, transition="cut", transition_duration=0.8)
    with pytest.raises(ValidationError, match=r"indices must be 0\.\.n-1"):
        Storyboard(title="t", scenes=[Scene(index=1, duration=3)])
    sb = Storyboard(
        title="t",
        scenes=[
            Scene(index=0, duration=4, transition="crossfade", transition_duration=0.5),
            Scene(index=1, duration=3, transition="cut"),
            Scene(index=2, duration=2, transition="slide", transition_duration=0.5),
        ],
    )
    assert sb.starts() == [0.0, 3.5, 6.5]
    assert sb.duration == pytest.approx(8.5)  # the last scene's transition is unused


@pytest.mark.parametrize(
    ("aspect", "res", "size"),
    [
        ("16:9", "1080p", (1920, 1080)),
        ("16:9", "720p", (1280, 720)),
        ("9:16", "720p", (720, 1280)),
        ("1:1", "480p", (480, 480)),
        ("16:9", "480p", (854, 480)),
    ],
)
def test_render_spec_sizes(aspect: str, res: str, size: tuple[int, int]) -> None:
    spec = render_spec(aspect, res, 30, "standard")  # type: ignore[arg-type]
    assert (spec.width, spec.height) == size
    assert spec.width % 2 == 0 and spec.height % 2 == 0
