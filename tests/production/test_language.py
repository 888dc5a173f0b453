"""Language rules: stop-words, phrase-boundary shortening, title casing; titles wrap, never cut."""

from __future__ import annotations

import pytest

from aiprod.production.backends.motion.text import fit_size
from aiprod.production.backends.planner import BuiltinPlanner, _title_from_text
from aiprod.production.language import (
    LANGUAGES,
    base_language,
    phrase_breaks,
    shorten_title,
    stop_words,
    title_case,
)
from aiprod.production.media.text import missing_glyphs, text_width, wrap_text
from aiprod.production.models import ProductionRequest


def test_every_language_has_rules_and_unknown_codes_fall_back_to_english() -> None:
    for lang in LANGUAGES:
        assert phrase_breaks(lang) <= stop_words(lang)
        assert len(stop_words(lang)) > 40
        assert all(w == w.lower() for w in stop_words(lang))
    assert base_language("fr-CA") == "fr"
    assert base_language("pt_BR") == "pt"
    assert base_language("xx") == "en"
    assert "the" in stop_words("en")
    assert "les" in stop_words("fr")
    assert "und" in stop_words("de")
    assert "że" in stop_words("pl")
    assert "которые" in stop_words("ru")
    assert "και" in stop_words("el")


def test_english_headline_case() -> None:
    assert title_case("the story of the coffee grinder") == "The Story of the Coffee Grinder"
    assert title_case("what the iPhone did for NASA") == "What the iPhone Did for NASA"
    assert title_case("a state-of-the-art guide: how to choose") == (
        "A State-of-the-Art Guide: How to Choose"
    )
    assert title_case("things worth looking at") == "Things Worth Looking At"  # last word
    assert title_case("«quoted» words") == "«Quoted» Words"
    assert title_case("") == ""


@pytest.mark.parametrize(
    ("lang", "source", "expected"),
    [
        ("fr", "comment les abeilles font le miel", "Comment les abeilles font le miel"),
        ("es", "¿por qué el café de Colombia?", "¿Por qué el café de Colombia?"),
        ("de", "die Geschichte der Kaffeemühle", "Die Geschichte der Kaffeemühle"),
        ("it", "il segreto della pasta di Napoli", "Il segreto della pasta di Napoli"),
        ("pt", "o pão de Lisboa", "O pão de Lisboa"),
        ("pl", "żółw i Kraków nocą", "Żółw i Kraków nocą"),
        ("ru", "ёлка в Москве", "Ёлка в Москве"),
        ("el", "η ιστορία της Αθήνας", "Η ιστορία της Αθήνας"),
    ],
)
def test_sentence_case_raises_the_first_letter_and_lowers_nothing(
    lang: str, source: str, expected: str
) -> None:
    assert title_case(source, lang) == expected


def test_shortening_happens_only_at_phrase_boundaries() -> None:
    long = "the story of the coffee grinder we inherited from our grandmother in Lyon"
    assert shorten_title(long, "en") == "the story of the coffee grinder we inherited"
    clause = "Die Geschichte der Kaffeemühle, die wir von unserer Großmutter geerbt haben"
    assert shorten_title(clause, "de") == "Die Geschichte der Kaffeemühle"
    french = "les abeilles transforment les fleurs en miel et pourquoi cela compte tant"
    assert shorten_title(french, "fr") == "les abeilles transforment les fleurs en miel"
    russian = "история старой кофемолки которую мы унаследовали от нашей бабушки прошлой зимой"
    assert shorten_title(russian, "ru") == "история старой кофемолки которую мы унаследовали"
    # Short titles stay whole; a run-on phrase with no boundary is kept whole too.
    assert shorten_title("a short title", "en") == "a short title"
    run_on = "supercalifragilistic " * 14
    assert shorten_title(run_on, "en") == run_on.strip()


def test_shortened_titles_never_end_on_a_stop_word() -> None:
    text = "the reasons why the old mill and the river of the town with its bridges fell"
    short = shorten_title(text, "en").split()
    assert short[-1] not in stop_words("en")
    assert text.startswith(" ".join(short))


def test_planner_titles_are_cased_per_language_and_not_cut_mid_phrase() -> None:
    title = _title_from_text(
        "The story of the coffee grinder we inherited from our grandmother in Lyon. More."
    )
    assert title == "The Story of the Coffee Grinder We Inherited"
    assert _title_from_text("[Scene 1]\nvisual: a mill\nwhy mills matter.") == "Why Mills Matter"
    short_de = "Die Geschichte der Kaffeemühle, die wir geerbt haben."
    assert _title_from_text(short_de, "de") == short_de.rstrip(".")  # short: kept whole
    long_de = "die Geschichte der Kaffeemühle, die wir von unserer Großmutter geerbt haben."
    assert _title_from_text(long_de, "de") == "Die Geschichte der Kaffeemühle"
    assert _title_from_text("", "fr") == "Untitled"
    assert len(_title_from_text("word " * 200)) <= 120


def test_script_plan_uses_the_request_language() -> None:
    request = ProductionRequest.model_validate(
        {"script": "les abeilles du jardin de ma grand-mère. Elles butinent.", "language": "fr"}
    )
    board = BuiltinPlanner().plan(request)
    assert board.title == "Les abeilles du jardin de ma grand-mère"
    assert missing_glyphs(board.title) == set()


@pytest.mark.parametrize(
    "title",
    [
        "How Honeybees Turn Flowers into Honey and Why It Matters",
        "Historia młynka do kawy, który odziedziczyliśmy po babci z Krakowa",
        "Η ιστορία του μύλου καφέ που κληρονομήσαμε",
    ],
)
def test_renderer_wraps_long_titles_instead_of_cutting_them(title: str) -> None:
    # As the motion renderer sizes a title card at 1280x720 (see motion/cards.py).
    max_w, short = int(1280 * 0.84), 720
    size = fit_size(
        title, round(short * 0.12), max_w, int(720 * 0.42), max(8, round(short * 0.025))
    )
    lines = wrap_text(title, size, max_w)
    assert len(lines) >= 2
    assert " ".join(lines) == title
    assert all(text_width(line, size) <= max_w for line in lines)
