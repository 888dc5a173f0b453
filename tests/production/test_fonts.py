"""Shipped fonts and the fallback chain: every European language renders, nothing as a box."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from aiprod.production.media import text as text_mod
from aiprod.production.media.text import (
    FONT_CHAIN,
    FONT_DIR,
    font_index,
    missing_glyphs,
    render_text_sprite,
    runs,
    text_width,
    wrap_text,
)

SAMPLES = {
    "fr": "Où est passé l'été ? Ça, c'est « très » cœur d'œuvre : 12 € — à bientôt…",
    "de": "Größere Übungen für Äpfel und Öl: „Straße“ kostet 5 € – schön, oder?",
    "es": "¿Dónde está el niño? ¡Mañana comeré piñas con el señor Muñoz! Ü",
    "pl": "Zażółć gęślą jaźń. Łódź, Śląsk, Kraków — żółw źle śpi; cena 9 zł",
    "el": "Καλημέρα! Η γλώσσα μας είναι ωραία: αβγδεζηθικλμνξοπρστυφχψω ΑΩ ΐΰ",
    "ru": "Съешь же ещё этих мягких французских булок, да выпей чаю. Ёлка — 100 ₽",
    "pt": "Não há coração sem ação: avô, avó, maçã e pão.",
    "it": "Perché è così? Più città, meno università.",
}
SPECIALS = (
    "éèêëàâäçôöœæüûùîïñáíóúãõåøßÿ"
    "ąęłśżźćńŁŚŻŹĆŃĄĘ"
    "őűčšžřěůșțğışİ"
    "αβγδεζηθλμξπσςφψωάέήίόύώΑΓΔΘΛΞΠΣΦΨΩ"
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяЁЖЩЮЯ"
    "–—“”‘’«»…•„‚‹›¿¡№°±×÷"
    "€£¥₽₹$¢₴₺"
    "→←↑↓⇒∞≤≥≠≈√∑∏∫"
    "✓✗★☆♥☀●■▶"
)
NOT_COVERED = "中"  # CJK: deliberately not shipped (see media/fonts/README.md)
EMOJI = "😀"


def alpha(s: str, size: int = 40) -> NDArray[np.uint8]:
    sprite = render_text_sprite(s, size, (255, 255, 255), 4000, shadow=False)
    return sprite[..., 3]


def test_the_uncovered_characters_really_are_uncovered() -> None:
    assert font_index(NOT_COVERED) is None
    assert font_index(EMOJI) is None


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_sample_sentences_have_no_missing_glyphs(language: str) -> None:
    sentence = SAMPLES[language]
    assert missing_glyphs(sentence) == set()
    sprite = render_text_sprite(sentence, 32, (255, 255, 255), 900)
    assert sprite[..., 3].max() == 255
    lines = wrap_text(sentence, 32, 900)
    assert " ".join(lines).split() == sentence.split()


def test_every_special_character_has_ink_and_is_not_the_notdef_box() -> None:
    notdef = alpha(NOT_COVERED)
    assert notdef.max() > 0  # the box itself is drawn: that is what we must not ship
    assert missing_glyphs(SPECIALS) == set()
    boxes = []
    for ch in SPECIALS:
        drawn = alpha(ch)
        if drawn.max() < 128 or (drawn.shape == notdef.shape and np.array_equal(drawn, notdef)):
            boxes.append(ch)
    assert boxes == []


def test_accents_change_the_rendering() -> None:
    # A covered accented letter is not drawn as its base letter or as a box.
    for plain, accented in (("e", "é"), ("z", "ż"), ("l", "ł"), ("e", "ё"), ("ω", "ώ")):
        a, b = alpha(plain), alpha(accented)
        assert a.shape != b.shape or not np.array_equal(a, b), accented


def test_missing_glyphs_names_uncovered_characters_and_ignores_invisible_ones() -> None:
    assert missing_glyphs(f"Café {NOT_COVERED} and {EMOJI}!") == {NOT_COVERED, EMOJI}
    assert missing_glyphs("tab\there\nnew line\u00a0nbsp\u200bzw\u200d\ufe0f\r") == set()
    assert missing_glyphs("") == set()


def test_combining_accents_are_composed_before_drawing() -> None:
    decomposed = "Cafe\u0301"
    assert missing_glyphs(decomposed) == set()
    assert np.array_equal(alpha(decomposed), alpha("Café"))
    assert text_width(decomposed, 30) == text_width("Café", 30)


def test_symbols_fall_back_to_the_next_font_in_the_chain() -> None:
    parts = runs("Go → now ✓")
    assert [FONT_CHAIN[i] for i, _ in parts] == [
        "NotoSans-Regular.ttf",
        "NotoSansMath-Regular.ttf",
        "NotoSans-Regular.ttf",
        "NotoSansSymbols2-Regular.ttf",
    ]
    assert "".join(s for _, s in parts) == "Go → now ✓"
    assert text_width("Go → now ✓", 30) == pytest.approx(sum(text_width(s, 30) for _, s in parts))
    # The fallback glyph sits on the line like the others: ink in the text block.
    sprite = alpha("a→a", 40)
    rows = np.nonzero(sprite.max(axis=1) > 128)[0]
    assert rows.min() > 0
    assert rows.max() < sprite.shape[0] - 1


def test_cmap_reader_agrees_with_fonttools() -> None:
    ttlib = pytest.importorskip("fontTools.ttLib")
    for name in FONT_CHAIN:
        expected = set(ttlib.TTFont(FONT_DIR / name).getBestCmap())
        assert text_mod._cmap(FONT_DIR / name) == expected, name


def test_fonts_ship_with_their_licence_and_stay_small() -> None:
    assert (FONT_DIR / "OFL.txt").read_text().count("SIL OPEN FONT LICENSE Version 1.1") == 1
    total = sum((FONT_DIR / name).stat().st_size for name in FONT_CHAIN)
    assert total < 2_000_000
    covered = {cp for i in range(len(FONT_CHAIN)) for cp in text_mod._coverage()[i]}
    latin = set(range(0x20, 0x7F)) | set(range(0xA0, 0x180))
    greek = {cp for cp in range(0x391, 0x3CA) if cp != 0x3A2}
    cyrillic = set(range(0x400, 0x460))
    assert latin | greek | cyrillic <= covered
