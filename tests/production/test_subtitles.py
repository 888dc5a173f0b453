"""Cue grouping, SRT/WebVTT formatting and parsing."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiprod.production.models import (
    Narration,
    Scene,
    Storyboard,
    SubtitleCue,
    Transition,
    WordTiming,
)
from aiprod.production.subtitles import (
    MAX_CUE_SECONDS,
    MAX_LINE_CHARS,
    MIN_CUE_SECONDS,
    cues_from_narrations,
    parse_srt,
    parse_vtt,
    to_srt,
    to_vtt,
)


def storyboard(
    *durations: float, transition: Transition = "crossfade", td: float = 0.5, language: str = "en"
) -> Storyboard:
    return Storyboard(
        title="t",
        language=language,
        scenes=[
            Scene(index=i, duration=d, transition=transition, transition_duration=td)
            for i, d in enumerate(durations)
        ],
    )


def timed(
    text: str, start: float = 0.0, word_s: float = 0.3, gap: float = 0.05
) -> list[WordTiming]:
    out, t = [], start
    for w in text.split():
        out.append(WordTiming(text=w, start=t, end=t + word_s))
        t += word_s + gap
    return out


def narration(words: list[WordTiming], duration: float | None = None) -> Narration:
    end = words[-1].end if words else 0.0
    return Narration(
        path=Path("n.wav"), sample_rate=22050, duration=duration or end + 0.2, words=words
    )


LONG = (
    "Honeybees visit thousands of flowers every day, collecting nectar in a special "
    "stomach. Back at the hive, they pass it from bee to bee, and the water slowly "
    "evaporates. What remains is honey: thick, sweet and almost impossible to spoil."
)


def words_of(cues: list[SubtitleCue]) -> list[str]:
    return " ".join(c.text for c in cues).split()


def test_cues_keep_every_word_in_order_and_respect_limits() -> None:
    sb = storyboard(30.0)
    ws = timed(LONG)
    cues = cues_from_narrations(sb, [narration(ws)], lead=0.3)
    assert words_of(cues) == LONG.split()
    assert len(cues) > 3
    for c in cues:
        lines = c.text.split("\n")
        assert 1 <= len(lines) <= 2
        assert all(len(line) <= MAX_LINE_CHARS for line in lines)
        assert c.end - c.start <= MAX_CUE_SECONDS + 0.8
        assert c.end - c.start >= MIN_CUE_SECONDS - 1e-9
    for a, b in itertools.pairwise(cues):
        assert a.end <= b.start + 1e-9


def test_cues_break_at_sentence_ends() -> None:
    ws = timed(LONG)
    cues = cues_from_narrations(storyboard(30.0), [narration(ws)], lead=0.0)
    texts = [c.text.replace("\n", " ") for c in cues]
    # Every sentence ends a cue: no cue holds the end of one sentence and the next's start.
    assert any(t.endswith("stomach.") for t in texts)
    assert any(t.endswith("evaporates.") for t in texts)
    # A sentence too long for one cue is broken after a comma, not mid-phrase.
    sentence = (
        "This sentence is deliberately long so that it cannot fit in two lines of "
        "subtitles, and so it must be split somewhere sensible, preferably at a comma."
    )
    cues = cues_from_narrations(storyboard(30.0), [narration(timed(sentence))], lead=0.0)
    assert len(cues) == 2
    assert cues[0].text.endswith("subtitles,")
    # Two lines are balanced rather than one full line and a stub.
    top, bottom = cues[0].text.split("\n")
    assert abs(len(top) - len(bottom)) < 12


SCRIPTS = [
    LONG,
    "Choose a burr grinder for the settings, from a fine powder for espresso to a coarse "
    "grind for a French press. Blade grinders chop unevenly and heat the beans, which "
    "leaves the cup bitter. Clean the burrs every month with a dry brush.",
    "Le café moulu perd ses arômes en quelques minutes, alors il vaut mieux moudre les "
    "grains juste avant de préparer la tasse et garder le reste dans une boîte fermée.",
    "Reisen Sie mit leichtem Gepäck und planen Sie für jeden Tag eine ruhige Stunde ein, "
    "in der Sie einfach durch die Straßen der Stadt gehen.",
]


@pytest.mark.parametrize(
    ("script", "language"),
    list(zip(SCRIPTS, ["en", "en", "fr", "de"], strict=True)),
    ids=["bees", "grinder", "fr", "de"],
)
def test_cues_never_leave_an_orphan_or_end_on_a_binding_word(script: str, language: str) -> None:
    """No cue of one or two words cut off a longer phrase ("grinder."), and no
    cue ends on an article, preposition or conjunction ("…for the | settings")."""
    for word_s in (0.22, 0.3, 0.4):  # fast and slow voices group differently
        cues = cues_from_narrations(
            storyboard(60.0, language=language),
            [narration(timed(script, word_s=word_s))],
            lead=0.0,
        )
        assert words_of(cues) == script.split()
        for c in cues:
            words = c.text.split()
            assert len(words) >= 3, (word_s, c.text)
            last = words[-1].lower().strip(",.")
            assert last not in {
                "the",
                "a",
                "for",
                "and",
                "of",
                "to",
                "le",
                "la",
                "les",
                "de",
                "et",
                "der",
                "die",
                "und",
                "in",
            }, (word_s, c.text)
            assert all(len(line) <= MAX_LINE_CHARS for line in c.text.split("\n"))


def test_cues_are_shifted_to_the_timeline() -> None:
    sb = storyboard(4.0, 5.0)  # scene 1 starts at 3.5 (0.5 s crossfade)
    n0 = narration([WordTiming(text="One.", start=0.2, end=0.6)])
    n1 = narration(
        [WordTiming(text="Two", start=0.1, end=0.4), WordTiming(text="words.", start=0.5, end=1.0)]
    )
    cues = cues_from_narrations(sb, [n0, n1], lead=0.3)
    assert [c.text for c in cues] == ["One.", "Two words."]
    assert cues[0].start == pytest.approx(0.5)
    assert cues[1].start == pytest.approx(3.5 + 0.3 + 0.1)
    # A short cue is held for the minimum display time...
    assert cues[0].end - cues[0].start >= MIN_CUE_SECONDS
    # ...and a cue lingers a moment after its last word.
    assert cues[1].end > 3.5 + 0.3 + 1.0


def test_min_duration_never_overlaps_the_next_cue() -> None:
    ws = [
        WordTiming(text="Go.", start=0.0, end=0.2),
        WordTiming(text="Stop", start=0.3, end=0.5),
        WordTiming(text="right", start=0.5, end=0.7),
        WordTiming(text="there.", start=0.7, end=0.9),
    ]
    cues = cues_from_narrations(storyboard(10.0), [narration(ws)], lead=0.0)
    # "Go." is too short for its own cue; it is merged (sentence too short to end a cue).
    assert words_of(cues) == ["Go.", "Stop", "right", "there."]
    for a, b in itertools.pairwise(cues):
        assert a.end <= b.start


def test_long_pause_starts_a_new_cue_and_long_speech_is_split_by_time() -> None:
    ws = [
        WordTiming(text="before", start=0.0, end=0.4),
        WordTiming(text="after", start=2.0, end=2.4),
    ]
    cues = cues_from_narrations(storyboard(10.0), [narration(ws)], lead=0.0)
    assert [c.text for c in cues] == ["before", "after"]
    slow = timed("a b c d e f g h i j k l m n o", word_s=0.9, gap=0.05)  # 14 s, few chars
    cues = cues_from_narrations(storyboard(20.0), [narration(slow)], lead=0.0)
    assert len(cues) >= 2
    assert all(c.end - c.start <= MAX_CUE_SECONDS + 0.5 for c in cues)


def test_overlapping_narrations_do_not_overlap_cues() -> None:
    sb = storyboard(2.0, 4.0)  # scene 1 starts at 1.5
    n0 = narration(timed("first scene talks for quite a long while"))  # ~2.8 s
    n1 = narration(timed("second scene"))
    cues = cues_from_narrations(sb, [n0, n1], lead=0.0)
    assert words_of(cues) == "first scene talks for quite a long while second scene".split()
    for a, b in itertools.pairwise(cues):
        assert a.end <= b.start + 1e-9
    assert cues[-1].end <= sb.duration


def test_narration_without_word_timings_is_spread_over_its_duration() -> None:
    sb = Storyboard(
        title="t", scenes=[Scene(index=0, duration=6.0, narration="Words without timings here.")]
    )
    n = Narration(path=Path("n.wav"), sample_rate=22050, duration=4.0, words=[])
    cues = cues_from_narrations(sb, [n], lead=0.5)
    assert words_of(cues) == ["Words", "without", "timings", "here."]
    assert cues[0].start == pytest.approx(0.5)
    assert cues[-1].end == pytest.approx(4.5, abs=0.2)


def test_srt_format_is_exact() -> None:
    cues = [
        SubtitleCue(start=0.5, end=2.25, text="Hello there"),
        SubtitleCue(start=3661.0004, end=3662.9996, text="two\nlines"),
    ]
    assert to_srt(cues) == (
        "1\n00:00:00,500 --> 00:00:02,250\nHello there\n\n"
        "2\n01:01:01,000 --> 01:01:03,000\ntwo\nlines\n"
    )


def test_vtt_format_has_header_dot_stamps_and_escapes() -> None:
    cues = [SubtitleCue(start=59.9999, end=61.5, text="Fish & chips <b>")]
    assert (
        to_vtt(cues) == "WEBVTT\n\n1\n00:01:00.000 --> 00:01:01.500\nFish &amp; chips &lt;b&gt;\n"
    )


def test_blank_lines_inside_a_cue_cannot_break_the_file() -> None:
    cues = [SubtitleCue(start=0, end=1, text="a\n\nb"), SubtitleCue(start=1, end=2, text="c --> d")]
    back = parse_srt(to_srt(cues))
    assert [c.text for c in back] == ["a\nb", "c -> d"]


@given(
    st.lists(
        st.tuples(
            st.floats(0, 5000, allow_nan=False),
            st.floats(0.001, 30, allow_nan=False),
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60
            ).filter(lambda s: s.strip() and "-->" not in s),
        ),
        max_size=8,
    )
)
@settings(max_examples=60, deadline=None)
def test_srt_and_vtt_round_trip(items: list[tuple[float, float, str]]) -> None:
    cues = [
        SubtitleCue(start=s, end=s + d, text=" ".join(t.split()))
        for s, d, t in items
        if " ".join(t.split())
    ]
    for back in (parse_srt(to_srt(cues)), parse_vtt(to_vtt(cues))):
        assert len(back) == len(cues)
        for a, b in zip(cues, back, strict=True):
            assert b.start == pytest.approx(a.start, abs=0.0006)
            assert b.end == pytest.approx(a.end, abs=0.0006)
            assert b.text == a.text


def test_parsers_tolerate_real_world_files() -> None:
    srt = (
        "\ufeff1\r\n00:00:01,000 --> 00:00:02,000\r\nHi\r\n\r\n\r\n"
        "2\r\n00:00:03,5 --> 00:00:04,000\r\nYo\r\n"
    )
    assert parse_srt(srt) == [
        SubtitleCue(start=1.0, end=2.0, text="Hi"),
        SubtitleCue(start=3.5, end=4.0, text="Yo"),
    ]
    vtt = (
        "WEBVTT - title\n\nNOTE a comment\nspanning lines\n\nSTYLE\n::cue { color: red }\n\n"
        "intro\n00:01.000 --> 00:02.500 align:start position:10%\n<v Bob>Hello</v> &amp; bye\n"
    )
    assert parse_vtt(vtt) == [SubtitleCue(start=1.0, end=2.5, text="Hello & bye")]
    with pytest.raises(ValueError, match="WEBVTT"):
        parse_vtt("1\n00:00:01.000 --> 00:00:02.000\nx\n")
    with pytest.raises(ValueError, match="timing"):
        parse_srt("1\n00:00:01 --> 00:00:02\nx\n")
