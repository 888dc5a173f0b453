"""Text sprites: wrapping, rendering and blending into frames."""

from __future__ import annotations

import numpy as np
import pytest

from aiprod.production.media.text import (
    balanced_width,
    blend,
    line_height,
    load_font,
    render_text_sprite,
    sprite_padding,
    text_width,
    wrap_text,
)

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank"


def test_wrap_respects_width_and_keeps_every_word_in_order() -> None:
    lines = wrap_text(SENTENCE, 24, 200)
    assert len(lines) > 1
    assert all(text_width(line, 24) <= 200 for line in lines)
    assert " ".join(lines).split() == SENTENCE.split()


def test_wrap_splits_a_word_too_long_for_the_line() -> None:
    lines = wrap_text("Supercalifragilisticexpialidocious", 30, 120)
    assert len(lines) > 1
    assert all(text_width(line, 30) <= 120 for line in lines)
    assert "".join(lines) == "Supercalifragilisticexpialidocious"


def test_wrap_keeps_explicit_newlines_and_ignores_blank_text() -> None:
    assert wrap_text("one\ntwo", 20, 1000) == ["one", "two"]
    assert wrap_text("   ", 20, 1000) == []
    assert wrap_text("", 20, 1000) == []


def test_balanced_width_evens_out_lines_without_adding_one() -> None:
    text = "Clean energy for every rooftop in the city"
    greedy = wrap_text(text, 40, 700)
    width = balanced_width(text, 40, 700)
    balanced = wrap_text(text, 40, width)
    assert len(balanced) == len(greedy) == 2
    spread = [text_width(line, 40) for line in balanced]
    greedy_spread = [text_width(line, 40) for line in greedy]
    assert max(spread) - min(spread) < max(greedy_spread) - min(greedy_spread)
    assert balanced_width("short", 40, 700) == 700


def test_sprite_geometry_and_colour() -> None:
    size, pad = 32, sprite_padding(32)
    sprite = render_text_sprite("Hello", size, (250, 200, 10), 1000, shadow=False)
    assert sprite.dtype == np.uint8
    assert sprite.ndim == 3
    assert sprite.shape[2] == 4
    assert sprite.shape[0] == line_height(size) + 2 * sprite_padding(size, shadow=False)
    assert sprite.shape[1] >= text_width("Hello", size)
    opaque = sprite[..., 3] == 255
    assert opaque.sum() > 50
    # Straight alpha: every visible pixel carries the text colour itself.
    assert (sprite[opaque][:, :3] == (250, 200, 10)).all()
    # The shadowed sprite has the same text block, offset by the larger padding.
    shadowed = render_text_sprite("Hello", size, (250, 200, 10), 1000)
    assert shadowed.shape[0] == line_height(size) + 2 * pad
    assert pad > sprite_padding(size, shadow=False)


def test_shadow_is_dark_under_light_text_and_light_under_dark_text() -> None:
    light = render_text_sprite("Shadow", 40, (255, 255, 255), 1000)
    dark = render_text_sprite("Shadow", 40, (20, 20, 20), 1000)
    # Semi-transparent pixels are the shadow's halo.
    halo_light = light[(light[..., 3] > 30) & (light[..., 3] < 200)]
    halo_dark = dark[(dark[..., 3] > 30) & (dark[..., 3] < 200)]
    assert halo_light[:, :3].mean() < 100
    assert halo_dark[:, :3].mean() > 150
    # The shadow falls below-right: more alpha in the bottom-right than the top-left.
    h, w = light.shape[:2]
    a = light[..., 3].astype(int)
    assert a[h // 2 :, w // 2 :].sum() > a[: h // 2, : w // 2].sum() * 0.9


def test_box_fills_behind_the_text() -> None:
    sprite = render_text_sprite(
        "Boxed", 30, (255, 255, 255), 1000, shadow=False, box=(0, 0, 0, 160)
    )
    pad = sprite_padding(30, shadow=False, box=(0, 0, 0, 160))
    # Just inside the box, next to the text block: the box colour and alpha.
    px = sprite[pad, pad - 2]
    assert tuple(px) == (0, 0, 0, 160)
    assert sprite[0, 0, 3] == 0  # the rounded corner stays clear


def test_alignment_of_multiple_lines() -> None:
    text = "a much longer first line\nshort"
    left = render_text_sprite(text, 24, (255, 255, 255), 2000, shadow=False, align="left")
    right = render_text_sprite(text, 24, (255, 255, 255), 2000, shadow=False, align="right")
    centre = render_text_sprite(text, 24, (255, 255, 255), 2000, shadow=False)
    lh, pad = line_height(24), sprite_padding(24, shadow=False)
    second = slice(pad + lh, pad + 2 * lh)

    def ink_columns(sprite: np.ndarray) -> np.ndarray:
        return np.nonzero(sprite[second, :, 3].max(axis=0) > 128)[0]

    l_cols, r_cols, c_cols = ink_columns(left), ink_columns(right), ink_columns(centre)
    assert l_cols[0] < c_cols[0] < r_cols[0]
    assert l_cols[-1] < c_cols[-1] < r_cols[-1]


def test_empty_text_gives_a_transparent_pixel() -> None:
    sprite = render_text_sprite("", 20, (255, 255, 255), 100)
    assert sprite.shape == (1, 1, 4)
    assert sprite[..., 3].max() == 0


def test_blend_is_exact_alpha_compositing() -> None:
    frame = np.full((4, 4, 3), 100, np.uint8)
    sprite = np.zeros((2, 2, 4), np.uint8)
    sprite[0, 0] = (200, 0, 50, 255)  # opaque
    sprite[0, 1] = (200, 0, 50, 0)  # transparent
    sprite[1, 0] = (200, 0, 50, 128)  # half
    blend(frame, sprite, 1, 1)
    assert tuple(frame[1, 1]) == (200, 0, 50)
    assert tuple(frame[1, 2]) == (100, 100, 100)
    expected = np.round((np.array([200, 0, 50]) * 128 + 100 * 127) / 255)
    assert np.abs(frame[2, 1].astype(int) - expected).max() <= 1
    assert tuple(frame[0, 0]) == (100, 100, 100)  # outside the sprite untouched


def test_blend_opacity_scales_alpha() -> None:
    frame = np.zeros((1, 1, 3), np.uint8)
    sprite = np.array([[[255, 255, 255, 255]]], np.uint8)
    blend(frame, sprite, 0, 0, opacity=0.5)
    assert abs(int(frame[0, 0, 0]) - 128) <= 1
    before = frame.copy()
    blend(frame, sprite, 0, 0, opacity=0.0)
    assert (frame == before).all()


@pytest.mark.parametrize(("x", "y"), [(-3, -2), (5, 4), (-10, 0), (8, 8), (0, -9)])
def test_blend_clips_at_every_edge(x: int, y: int) -> None:
    frame = np.zeros((6, 8, 3), np.uint8)
    sprite = np.zeros((5, 5, 4), np.uint8)
    sprite[..., :3] = 255
    sprite[..., 3] = 255
    blend(frame, sprite, x, y)
    expected = np.zeros((6, 8), bool)
    expected[max(0, y) : max(0, y + 5), max(0, x) : max(0, x + 5)] = True
    assert ((frame[..., 0] == 255) == expected).all()


def test_primary_font_is_cached_and_scales() -> None:
    font = load_font(40)
    assert font.size == 40
    assert load_font(40) is font  # cached
    assert text_width("wide text", 40) > text_width("wide text", 20) * 1.8
