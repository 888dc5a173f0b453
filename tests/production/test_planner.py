"""The built-in planner: pacing, script splitting, determinism, media placement."""

import pytest

from aiprod.production.backends.planner import (
    BuiltinPlanner,
    PlanningError,
    speech_seconds,
    split_script,
)
from aiprod.production.models import ProductionRequest

PROMPT = "A short film about how honeybees turn flowers into honey"


def plan(**kw: object):  # type: ignore[no-untyped-def]
    return BuiltinPlanner().plan(ProductionRequest.model_validate(kw))


@pytest.mark.parametrize("duration", [8, 20, 45, 90, 120])
def test_prompt_plan_meets_target_duration(duration: float) -> None:
    sb = plan(prompt=PROMPT, duration=duration)
    assert sb.duration == pytest.approx(duration, abs=0.05)
    content = [s for s in sb.scenes if s.kind == "content"]
    assert content and all(s.narration for s in content)
    # Narration is paced to the time each scene has at the voice's rate.
    for s in content:
        assert speech_seconds(s.narration, 165) <= s.duration


def test_prompt_plan_structure_and_topic() -> None:
    sb = plan(prompt=PROMPT, duration=45)
    assert sb.scenes[0].kind == "title"
    assert sb.scenes[-1].kind == "end"
    assert sb.scenes[-1].transition == "cut"
    assert sb.title == "How Honeybees Turn Flowers into Honey"
    text = " ".join(s.narration for s in sb.scenes).lower()
    assert "honeybees" in text and "short film" not in text
    assert 4 <= len([s for s in sb.scenes if s.kind == "content"]) <= 8


def test_slower_voice_gets_fewer_words() -> None:
    fast = plan(prompt=PROMPT, duration=60, voice={"rate": 220})
    slow = plan(prompt=PROMPT, duration=60, voice={"rate": 110})
    words = lambda sb: sum(len(s.narration.split()) for s in sb.scenes)  # noqa: E731
    assert words(slow) < words(fast)


def test_deterministic_per_seed() -> None:
    a = plan(prompt=PROMPT, duration=45, seed=3)
    b = plan(prompt=PROMPT, duration=45, seed=3)
    c = plan(prompt=PROMPT, duration=45, seed=4)
    assert a == b
    assert a != c


def test_script_markers_and_directives() -> None:
    script = """[scene]
Bees leave the hive at dawn.
VISUAL: a hive at sunrise
TEXT: Dawn
CAMERA: pan_left
TRANSITION: slide

[scene]
They visit thousands of flowers.

[scene]
Back home, nectar becomes honey."""
    sb = plan(script=script)
    assert [s.narration for s in sb.scenes] == [
        "Bees leave the hive at dawn.",
        "They visit thousands of flowers.",
        "Back home, nectar becomes honey.",
    ]
    first = sb.scenes[0]
    assert (first.visual, first.on_screen_text, first.camera, first.transition) == (
        "a hive at sunrise",
        "Dawn",
        "pan_left",
        "slide",
    )
    assert sb.scenes[-1].transition == "cut"


def test_script_paragraphs_then_sentences() -> None:
    assert split_script("One para here.\n\nSecond para.\n\n\nThird.") == [
        "One para here.",
        "Second para.",
        "Third.",
    ]
    long = " ".join(f"Sentence number {i} is here with several words." for i in range(12))
    groups = split_script(long)
    assert len(groups) > 1
    assert " ".join(groups) == long


def test_script_duration_stretches_but_never_squeezes() -> None:
    script = "Bees fly.\n\nBees buzz.\n\nBees rest."
    natural = plan(script=script)
    stretched = plan(script=script, duration=30)
    assert stretched.duration > natural.duration
    assert stretched.duration == pytest.approx(30, rel=0.1)
    long = " ".join(["Honey is sweet and bees work hard all day long."] * 30)
    squeezed = plan(script=long, duration=5)
    assert squeezed.duration > 5  # the speech itself takes longer than 5 s


def test_media_attached_and_out_of_range_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    img = tmp_path / "a.png"
    img.write_bytes(b"x")
    sb = plan(script="One.\n\nTwo.", media=[{"scene": 1, "path": str(img)}])
    assert sb.scenes[1].media is not None and sb.scenes[0].media is None
    with pytest.raises(PlanningError, match="for scene 5 but the storyboard has 2 scenes"):
        plan(script="One.\n\nTwo.", media=[{"scene": 5, "path": str(img)}])


def test_too_many_scenes_for_preset() -> None:
    script = "\n\n".join(f"Paragraph {i}." for i in range(12))
    with pytest.raises(PlanningError, match="quick_social preset allows 6"):
        plan(script=script, preset="quick_social")
