"""Music mood from the topic when the request says `auto` (the default)."""

from __future__ import annotations

import pytest

from aiprod.production.models import ProductionRequest
from aiprod.production.moods import mood_for


@pytest.mark.parametrize(
    ("text", "mood"),
    [
        ("Three tips to sleep better tonight", "calm"),
        ("How our startup doubled its sales with better customer data", "corporate"),
        ("Party games for kids: fun with a cardboard box", "playful"),
        ("The battle that ended an empire", "dramatic"),
        ("A haunted house and the crime nobody solved", "dark"),
        ("How honeybees turn flowers into honey", "uplifting"),  # no mood words
        ("Conseils pour mieux dormir", "calm"),
    ],
)
def test_mood_follows_the_topic(text: str, mood: str) -> None:
    assert mood_for(text) == mood


def test_auto_is_the_default_and_is_resolved_in_the_request() -> None:
    assert ProductionRequest(prompt="Three tips to sleep better tonight").music == "calm"
    assert ProductionRequest(prompt="Sleep better", music="auto").music == "calm"
    assert ProductionRequest(prompt="Sleep better", music="dark").music == "dark"  # asked
    assert ProductionRequest(prompt="Sleep better", music=None).music is None  # no music
    stored = ProductionRequest(prompt="Sleep better").model_dump(mode="json")
    assert ProductionRequest.model_validate(stored).music == "calm"  # round-trips
