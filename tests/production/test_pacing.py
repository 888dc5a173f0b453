"""Pacing: scenes follow the measured speech, and the requested duration holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiprod.production.models import Narration, ProductionRequest, Scene, Storyboard, WordTiming
from aiprod.production.stages.narrate import (
    DURATION_TOLERANCE,
    MAX_SPEEDUP,
    NARRATION_LEAD,
    fit_to_narration,
    requested_duration,
    speedup_needed,
)


def spoken(seconds: float) -> Narration:
    words = [WordTiming(text="word", start=0.0, end=seconds)] if seconds else []
    return Narration(path=Path("n.wav"), sample_rate=24000, duration=seconds + 0.2, words=words)


def board(*durations: float, kinds: tuple[str, ...] = ()) -> Storyboard:
    return Storyboard(
        title="t",
        scenes=[
            Scene(
                index=i,
                duration=d,
                kind=kinds[i] if kinds else "content",  # type: ignore[arg-type]
                transition="crossfade" if i < len(durations) - 1 else "cut",
                transition_duration=0.5,
            )
            for i, d in enumerate(durations)
        ],
    )


def test_scenes_shrink_and_grow_to_their_speech() -> None:
    """Planned 8 s around 3 s of speech shrinks (no dead air); planned 2 s
    around 5 s of speech grows; a silent card keeps its length."""
    sb = board(3.0, 8.0, 2.0, 3.0, kinds=("title", "content", "content", "end"))
    fitted = fit_to_narration(sb, [spoken(0), spoken(3.0), spoken(5.0), spoken(0)], breath=0.4)
    d = [s.duration for s in fitted.scenes]
    assert d[0] == 3.0 and d[3] == 3.0
    assert d[1] == pytest.approx(3.0 + 0.5 + 0.4)  # speech + the transition's overlap + breath
    assert d[2] == pytest.approx(5.0 + 0.5 + 0.4)
    # The silence between two scenes' voices is the breath, whatever was planned.
    starts = fitted.starts()
    gap = (starts[2] + NARRATION_LEAD) - (starts[1] + NARRATION_LEAD + 3.0)
    assert gap == pytest.approx(0.4)


def test_breath_is_configurable() -> None:
    sb = board(5.0, 5.0)
    short = fit_to_narration(sb, [spoken(3.0), spoken(3.0)], breath=0.2)
    long = fit_to_narration(sb, [spoken(3.0), spoken(3.0)], breath=1.5)
    assert long.scenes[0].duration - short.scenes[0].duration == pytest.approx(1.3)


def test_a_short_production_is_brought_within_the_requested_duration() -> None:
    sb = board(5.0, 5.0, 5.0)
    fitted = fit_to_narration(sb, [spoken(2.0)] * 3, breath=0.4, target=20.0)
    assert abs(fitted.duration - 20.0) <= DURATION_TOLERANCE * 20.0


def test_a_long_production_asks_the_voice_to_speak_faster() -> None:
    sb = board(5.0, 5.0)
    narrations = [spoken(6.0), spoken(6.0)]
    fitted = fit_to_narration(sb, narrations, breath=0.4, target=10.0)
    factor = speedup_needed(fitted, narrations, 10.0)
    assert 1.0 < factor <= MAX_SPEEDUP
    # At that rate the speech shrinks by the factor and the total fits.
    faster = [spoken(6.0 / factor)] * 2
    refit = fit_to_narration(sb, faster, breath=0.4, target=10.0)
    assert refit.duration <= 10.0 * (1 + DURATION_TOLERANCE)
    # Within tolerance already: no change of rate.
    assert speedup_needed(fitted, narrations, fitted.duration) == 1.0
    # Far too long: capped, not absurd (QA reports the overrun).
    assert speedup_needed(fitted, narrations, 5.0) == MAX_SPEEDUP


def test_the_duration_to_meet() -> None:
    assert requested_duration(ProductionRequest(script="Hello there.", duration=12)) == 12
    assert requested_duration(ProductionRequest(script="Hello there.")) is None
    assert requested_duration(ProductionRequest(prompt="How bees make honey")) is None
