"""The built-in planner: pacing, script splitting, determinism, media placement."""

import pytest

from aiprod.production.backends.planner import (
    BuiltinPlanner,
    PlanningError,
    split_script,
)
from aiprod.production.models import ProductionRequest

PROMPT = "A short film about how honeybees turn flowers into honey"


def plan(**kw: object):  # type: ignore[no-untyped-def]
    return BuiltinPlanner().plan(ProductionRequest.model_validate(kw))


TIPS = (
    "Three tips to sleep better tonight: keep a fixed bedtime, no screens after ten, "
    "and a cool dark room"
)


@pytest.mark.parametrize("duration", [8, 20, 45, 90, 120])
def test_prompt_plan_meets_target_duration(duration: float) -> None:
    sb = plan(prompt=TIPS, duration=duration)
    # (scenes have a floor: a very short target is met by the narrate stage's pacing)
    assert sb.duration == pytest.approx(duration, rel=0.1)
    narrated = [s for s in sb.scenes if s.kind != "end"]
    assert narrated and all(s.narration for s in narrated)


def test_counted_prompt_gives_numbered_scenes_in_its_own_words() -> None:
    sb = plan(prompt=TIPS, duration=45)
    assert sb.title == "Three Tips to Sleep Better Tonight"
    assert [s.kind for s in sb.scenes] == ["title", "content", "content", "content", "end"]
    assert [s.narration for s in sb.scenes[1:4]] == [
        "Tip one: keep a fixed bedtime.",
        "Tip two: no screens after ten.",
        "Tip three: a cool dark room.",
    ]
    assert [s.on_screen_text.split(" · ")[0] for s in sb.scenes[1:4]] == ["1", "2", "3"]
    assert sb.written_by == "template" and "AI provider" in sb.notes[0]


def test_a_count_without_items_is_announced_not_invented() -> None:
    sb = plan(prompt="Three tips to sleep better tonight", duration=30)
    tips = [s.narration for s in sb.scenes if s.kind == "content"]
    assert tips == ["Tip one.", "Tip two.", "Tip three."]
    assert any("names 0" in n for n in sb.notes)


def test_how_it_works_becomes_steps_and_nothing_is_padded() -> None:
    prompt = (
        "How a coffee grinder works. Burrs crush the beans between two rings. "
        "The gap sets the size of the grind."
    )
    sb = plan(prompt=prompt, duration=30)
    said = [s.narration for s in sb.scenes if s.narration]
    assert said == [
        "How a coffee grinder works.",
        "Step one: burrs crush the beans between two rings.",
        "Step two: the gap sets the size of the grind.",
    ]


def test_prompt_plan_structure_and_topic() -> None:
    sb = plan(prompt=PROMPT, duration=45)
    assert sb.title == "How Honeybees Turn Flowers into Honey"
    assert sb.scenes[-1].kind == "end" and sb.scenes[-1].transition == "cut"
    # One idea, said once: no filler sentences around it.
    assert [s.narration for s in sb.scenes if s.narration] == [
        "How honeybees turn flowers into honey."
    ]
    assert any("one idea" in n for n in sb.notes)


def test_slower_voice_gets_longer_scenes_not_other_words() -> None:
    fast = plan(prompt=TIPS, duration=60, voice={"rate": 220})
    slow = plan(prompt=TIPS, duration=60, voice={"rate": 110})
    assert [s.narration for s in fast.scenes] == [s.narration for s in slow.scenes]


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


def test_a_script_of_some_length_gets_title_and_end_cards() -> None:
    script = "\n\n".join(
        [
            "Descaling a kettle takes ten minutes and a cup of white vinegar.",
            "Fill it halfway with water and vinegar, then bring it to the boil.",
            "Leave it to stand for twenty minutes, pour it away and rinse it twice.",
        ]
    )
    sb = plan(script=script)
    assert [s.kind for s in sb.scenes] == ["title", "content", "content", "content", "end"]
    assert not sb.scenes[0].narration and not sb.scenes[-1].narration  # the script is the voice
    assert sb.scenes[1].narration.startswith("Descaling")
    assert sb.scenes[-1].transition == "cut"
    short = plan(script="Bees fly.\n\nBees buzz.")
    assert {s.kind for s in short.scenes} == {"content"}  # a few seconds need no cards


def test_headings_are_phrases_and_the_end_card_speaks_the_language() -> None:
    script = "\n\n".join(
        [
            "Fill the kettle halfway with equal parts of water and vinegar, then boil it.",
            "Leave it to stand for twenty minutes, pour it away and rinse it twice.",
            "Your tea will taste of tea again, and the kettle will boil faster too.",
        ]
    )
    sb = plan(script=script)
    headings = [s.on_screen_text for s in sb.scenes[1:4]]
    assert headings[:2] == ["Fill the kettle halfway", "Leave it to stand"]
    for scene in sb.scenes[1:4]:  # the start of the scene's own sentence, not keywords
        assert scene.narration.startswith(scene.on_screen_text)
        assert 3 <= len(scene.on_screen_text.split()) <= 6
    assert sb.scenes[-1].on_screen_text == "Thanks for watching"
    french = plan(script=script, language="fr", voice={"name": "fr"})
    assert french.scenes[-1].on_screen_text == "Merci d'avoir regardé"
