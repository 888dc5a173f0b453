"""Typography by layout: the scene's words, icon and badges placed inside the safe area.

`compose` turns a scene's `Layout` (see `layouts.choose_layout`) into a
`TextLayer`: what is drawn, where, and when it arrives.  Every box it places
lies inside `layouts.safe_area`, so 9:16 text stays clear of the platforms'
buttons and captions.  Pictures (icons, number badges, the lower-third bar) are
drawn once into RGBA sprites and animate like words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from aiprod.production.backends.motion.icons import icon_sprite
from aiprod.production.backends.motion.layouts import Layout, safe_area
from aiprod.production.backends.motion.text import TextLayer, fit_size
from aiprod.production.media.text import (
    RGB,
    line_height,
    missing_glyphs,
    render_text_sprite,
    sprite_padding,
    text_width,
    wrap_text,
)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Ink:
    """The colours of a scene's typography."""

    text: RGB  # words
    accent: RGB  # figures, badges, icons, rules
    on_accent: RGB  # a numeral on a badge


@dataclass(frozen=True)
class Timing:
    start: float
    fade_in: float
    fade_out: tuple[float, float]
    duration: float

    @classmethod
    def of(cls, d: float) -> Timing:
        out_end = d - min(0.2, 0.06 * d)
        return cls(
            min(0.35, 0.12 * d), min(0.45, 0.2 * d), (out_end - min(0.5, 0.15 * d), out_end), d
        )

    def stagger(self, text: str, share: float = 0.35) -> float:
        return min(0.14, share * self.duration / max(1, len(text.split())))


@dataclass(frozen=True)
class Composed:
    layer: TextLayer
    dim: float  # background brightness under the text (cards are dimmed)
    scrims: list[Box]  # where to darken the background (fractions of the frame)


def compose(
    layout: Layout,
    size: tuple[int, int],
    ink: Ink,
    title: str,
    icon: str | None,
    font_scale: float,
    duration: float,
    credits: str = "",
    captions: str | None = "bottom",
) -> Composed:
    """The scene's typography for `layout` on a frame of `size` (width, height);
    an end card also shows `credits` (the stock assets' authors), small, at the
    bottom of the safe area.  A lower third keeps clear of the burned-in
    subtitles (`captions`: their edge, or None): at the top when they are at
    the bottom."""
    w, h = size
    tm = Timing.of(duration)
    c = _Canvas(w, h, ink, tm, font_scale)
    kind = layout.kind
    if kind in ("title", "end"):
        return c.card(layout, title, icon, credits if kind == "end" else "")
    if kind == "numbered":
        c.numbered(layout.big, layout.heading)
    elif kind == "figure":
        c.figure(layout.big, layout.heading)
    elif kind == "quote":
        c.quote(layout.heading, layout.other)
    elif kind == "comparison":
        return c.comparison(layout.heading, layout.other)
    elif kind == "lower_third":
        return c.lower_third(layout.heading, top=captions == "bottom")
    else:
        c.headline(layout.heading, icon, layout.side)
    return c.done()


class _Canvas:
    def __init__(self, w: int, h: int, ink: Ink, tm: Timing, fs: float) -> None:
        self.w, self.h, self.ink, self.tm, self.fs = w, h, ink, tm, fs
        self.x0, self.y0, self.x1, self.y1 = safe_area(w, h)
        self.sw, self.sh = self.x1 - self.x0, self.y1 - self.y0
        self.short = min(w, h)
        self.min_size = max(8, round(self.short * 0.025))
        self.vertical = w < h * 0.75
        self.layer = TextLayer(tm.fade_out, (w, h))

    def px(self, frac: float) -> int:
        return round(self.short * frac * self.fs)

    def fit(self, text: str, frac: float, max_w: int, max_h: int) -> int:
        return fit_size(text, self.px(frac), max_w, max_h, self.min_size)

    def block_h(self, text: str, size: int, max_w: int) -> int:
        return len(wrap_text(text, size, max_w)) * line_height(size) if text else 0

    def words(
        self,
        text: str,
        size: int,
        left: int,
        width: int,
        top: int,
        start: float,
        *,
        color: RGB | None = None,
        align: str = "center",
        shear: float = 0.0,
    ) -> tuple[int, float]:
        return self.layer.add_words(
            text, size, color or self.ink.text, width, top, width, start,
            self.tm.stagger(text), self.tm.fade_in, left=left, align=align, shear=shear,
        )  # fmt: skip

    def done(self, dim: float = 1.0, scrims: list[Box] | None = None) -> Composed:
        box = self.layer.box
        if scrims is None:
            scrims = [] if box is None else [self._frac(box)]
        return Composed(self.layer, dim, scrims)

    def _frac(self, box: tuple[float, float, float, float]) -> Box:
        x0, y0, x1, y1 = box
        return (x0 / self.w, y0 / self.h, x1 / self.w, y1 / self.h)

    # ------------------------------------------------------------------ layouts

    def headline(self, text: str, icon: str | None, side: str) -> None:
        tm = self.tm
        if icon and side != "center" and not self.vertical:
            isz = min(round(self.sh * 0.5), round(self.sw * 0.28))
            gap = round(isz * 0.25)
            tx = self.x0 + isz + gap + round(self.sw * 0.04)
            tw = self.x1 - tx
            size = self.fit(text, 0.085, tw, round(self.sh * 0.8)) if text else 0
            th = self.block_h(text, size, tw)
            cy = (self.y0 + self.y1) // 2
            ix = self.x0 + round(self.sw * 0.04)
            self.layer.add_sprite(
                icon_sprite(icon, isz, self.ink.accent, 0.92),
                ix,
                cy - isz // 2,
                tm.start,
                tm.fade_in,
            )
            if text:
                self.words(text, size, tx, tw, cy - th // 2, tm.start + 0.1, align="left")
            return
        isz = round(min(self.sh, self.sw) * (0.3 if text else 0.45)) if icon else 0
        size = self.fit(text, 0.08, round(self.sw * 0.92), round(self.sh * 0.45)) if text else 0
        tw = round(self.sw * 0.92)
        th = self.block_h(text, size, tw)
        gap = round(isz * 0.18) if icon and text else 0
        top = (self.y0 + self.y1) // 2 - (isz + gap + th) // 2
        if icon:
            cx = (self.x0 + self.x1) // 2
            self.layer.add_sprite(
                icon_sprite(icon, isz, self.ink.accent, 0.92),
                cx - isz // 2,
                top,
                tm.start,
                tm.fade_in,
            )
        if text:
            self.words(text, size, self.x0, self.sw, top + isz + gap, tm.start + 0.1)

    def numbered(self, numeral: str, heading: str) -> None:
        tm = self.tm
        d = round(min(self.sh * 0.42, self.sw * 0.3) * min(1.3, self.fs))
        badge = _badge(numeral, d, self.ink.accent, self.ink.on_accent)
        if self.vertical:
            tw = self.sw
            size = self.fit(heading, 0.085, tw, round(self.sh * 0.4)) if heading else 0
            th = self.block_h(heading, size, tw)
            gap = round(d * 0.25)
            top = (self.y0 + self.y1) // 2 - (d + gap + th) // 2
            self.layer.add_sprite(badge, (self.x0 + self.x1 - d) // 2, top, tm.start, tm.fade_in)
            if heading:
                self.words(heading, size, self.x0, tw, top + d + gap, tm.start + 0.15)
            return
        gap = round(d * 0.3)
        bx = self.x0 + round(self.sw * 0.06)
        tx = bx + d + gap
        tw = self.x1 - tx
        size = self.fit(heading, 0.09, tw, round(self.sh * 0.7)) if heading else 0
        th = self.block_h(heading, size, tw)
        cy = (self.y0 + self.y1) // 2
        self.layer.add_sprite(badge, bx, cy - d // 2, tm.start, tm.fade_in)
        if heading:
            self.words(heading, size, tx, tw, cy - th // 2, tm.start + 0.15, align="left")

    def figure(self, figure: str, label: str) -> None:
        tm = self.tm
        big = self.fit(figure, 0.32, self.sw, round(self.sh * 0.55))
        small = self.fit(label, 0.06, round(self.sw * 0.9), round(self.sh * 0.2)) if label else 0
        bh = line_height(big)
        lh = self.block_h(label, small, round(self.sw * 0.9))
        gap = round(bh * 0.05)
        top = (self.y0 + self.y1) // 2 - (bh + gap + lh) // 2
        self.words(figure, big, self.x0, self.sw, top, tm.start, color=self.ink.accent)
        if label:
            self.words(label, small, self.x0, self.sw, top + bh + gap, tm.start + 0.3)

    def quote(self, text: str, by: str) -> None:
        tm = self.tm
        mark = self.px(0.34)
        tw = round(self.sw * 0.86)
        size = self.fit(text, 0.075, tw, round(self.sh * 0.55))
        th = self.block_h(text, size, tw)
        bys = max(self.min_size, round(size * 0.6)) if by else 0
        byh = line_height(bys) if by else 0
        mh = round(mark * 0.45)  # the quote mark's ink is high in its line
        top = (self.y0 + self.y1) // 2 - (mh + th + byh) // 2
        sprite = render_text_sprite("“", mark, self.ink.accent, self.w, shadow=False)
        pad = sprite_padding(mark, shadow=False)
        self.layer.add_sprite(
            sprite, self.x0 + round(self.sw * 0.02) - pad, top - pad, tm.start, tm.fade_in
        )
        left = self.x0 + (self.sw - tw) // 2
        bottom, _ = self.words(text, size, left, tw, top + mh, tm.start + 0.15, shear=0.18)
        if by:
            self.words("— " + by, bys, left, tw, bottom + round(byh * 0.3), tm.start + 0.5)

    def comparison(self, a: str, b: str) -> Composed:
        """Two panels side by side (stacked on a vertical frame) and a "vs" badge."""
        tm = self.tm
        boxes: list[Box] = []
        if self.vertical:
            gap = round(self.sh * 0.08)
            pw, ph = self.sw, (self.sh - gap) // 2
            origins = [(self.x0, self.y0), (self.x0, self.y0 + ph + gap)]
        else:
            gap = round(self.sw * 0.08)
            pw, ph = (self.sw - gap) // 2, round(self.sh * 0.7)
            py = (self.y0 + self.y1) // 2 - ph // 2
            origins = [(self.x0, py), (self.x0 + pw + gap, py)]
        for i, (text, (px0, py0)) in enumerate(zip((a, b), origins, strict=True)):
            inner = round(pw * 0.86)
            size = self.fit(text, 0.1, inner, round(ph * 0.8))
            th = self.block_h(text, size, inner)
            left = px0 + (pw - inner) // 2
            self.words(text, size, left, inner, py0 + (ph - th) // 2, tm.start + 0.35 * i)
            boxes.append(self._frac((px0, py0, px0 + pw, py0 + ph)))
        d = round(min(gap * 1.6, self.sh * 0.22, self.sw * 0.3))
        badge = _badge("vs", d, self.ink.accent, self.ink.on_accent)
        cx, cy = (self.x0 + self.x1) // 2, (self.y0 + self.y1) // 2
        self.layer.add_sprite(badge, cx - d // 2, cy - d // 2, tm.start + 0.2, tm.fade_in)
        return self.done(scrims=boxes)

    def lower_third(self, text: str, top: bool = False) -> Composed:
        tm = self.tm
        if not text:
            return self.done()
        max_w = round(self.sw * (0.9 if self.vertical else 0.6))
        size = self.fit(text, 0.06, max_w, round(self.sh * 0.25))
        tw = min(
            max_w, round(max(text_width(line, size) for line in wrap_text(text, size, max_w))) + 1
        )
        th = self.block_h(text, size, max_w)
        padx, pady, stripe = round(size * 0.6), round(size * 0.35), max(3, round(size * 0.15))
        bw, bh = tw + 2 * padx + stripe, th + 2 * pady
        bx, by = self.x0, (self.y0 if top else self.y1 - bh)
        self.layer.add_sprite(_bar(bw, bh, stripe, self.ink.accent), bx, by, tm.start, tm.fade_in)
        self.words(
            text,
            size,
            bx + stripe + padx,
            tw,
            by + pady,
            tm.start + 0.15,
            color=(255, 255, 255),
            align="left",
        )
        return self.done(scrims=[])

    def card(self, layout: Layout, title: str, icon: str | None, credits: str = "") -> Composed:
        tm = self.tm
        if credits:  # a small line at the bottom; the card centres above it
            # Names come from a stock library: a letter no font draws is left out.
            missing = missing_glyphs(credits)
            credits = " ".join("".join(ch for ch in credits if ch not in missing).split())
        if credits:
            cs = max(self.min_size, round(self.short * 0.026))
            cw = round(self.sw * 0.94)
            lines = wrap_text(credits, cs, cw)[:2]
            credits = " ".join(lines)
            ch = len(lines) * line_height(cs)
            sprite = render_text_sprite(credits, cs, self.ink.text, cw)
            pad = sprite_padding(cs)
            cx = (self.x0 + self.x1) // 2 - int(sprite.shape[1]) // 2
            self.layer.add_sprite(sprite, cx, self.y1 - ch - pad, tm.start + 0.3, tm.fade_in)
            self.y1 -= ch + round(ch * 0.5)
            self.sh = self.y1 - self.y0
        title = " ".join(title.split())
        on_screen = layout.heading
        if layout.kind == "title":
            primary, secondary, frac = title, on_screen, 0.12
        else:
            primary, secondary = (on_screen, title) if on_screen else (title, "")
            frac = 0.1
        self.layer.fade_out = None if layout.kind == "end" else tm.fade_out
        max_w = round(self.sw * 0.94)
        big = self.fit(primary, frac, max_w, round(self.sh * 0.42))
        small = max(self.min_size, self.px(0.05))
        lh_big = line_height(big)
        n_big = max(1, len(wrap_text(primary, big, max_w)))
        gap = round(lh_big * 0.45)
        sub_h = self.block_h(secondary, small, max_w)
        isz = round(min(self.sh * 0.2, self.sw * 0.2)) if icon and layout.kind == "title" else 0
        igap = round(isz * 0.3)
        block = isz + igap + n_big * lh_big + (gap * 2 + sub_h if secondary else 0)
        top = (self.y0 + self.y1) // 2 - block // 2
        cx = (self.x0 + self.x1) // 2
        if icon and isz:
            self.layer.add_sprite(
                icon_sprite(icon, isz, self.ink.accent, 0.9),
                cx - isz // 2,
                top,
                tm.start,
                tm.fade_in,
            )
            top += isz + igap
        stagger = min(0.12, 0.3 * tm.duration / max(1, len(primary.split())))
        bottom, arrived = self.layer.add_words(
            primary,
            big,
            self.ink.text,
            self.sw,
            top,
            max_w,
            tm.start,
            stagger,
            tm.fade_in,
            left=self.x0,
        )
        bar_h = max(2, round(self.short * 0.006))
        self.layer.add_bar(
            (cx, bottom + gap), (round(self.sw * 0.18), bar_h), self.ink.accent, tm.start, 0.6
        )
        if secondary:
            sub = render_text_sprite(secondary, small, self.ink.text, max_w)
            pad = sprite_padding(small)
            sx = cx - int(sub.shape[1]) // 2
            self.layer.add_sprite(sub, sx, bottom + 2 * gap - pad, arrived * 0.8, tm.fade_in)
        return self.done(dim=0.82)


def _badge(label: str, d: int, fill: RGB, ink: RGB) -> NDArray[np.uint8]:
    """A filled disc of diameter `d` with `label` centred in it (RGBA)."""
    ss = 4
    mask = Image.new("L", (d * ss, d * ss), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, d * ss - 1, d * ss - 1), fill=255)
    disc = np.asarray(mask.reduce(ss), dtype=np.uint8)
    out = np.zeros((d, d, 4), np.uint8)
    out[..., :3] = fill
    out[..., 3] = disc
    size = max(8, round(d * (0.58 if len(label) == 1 else 0.46)))
    text = render_text_sprite(label, size, ink, d * 2, shadow=False)
    th, tw = int(text.shape[0]), int(text.shape[1])
    img = Image.fromarray(out, "RGBA")
    glyphs = Image.fromarray(text, "RGBA")
    # Centre the ink, not the line box: numerals sit high in the line.
    rows = np.flatnonzero(text[..., 3].max(axis=1) > 0)
    ink_mid = (rows[0] + rows[-1]) / 2 if rows.size else th / 2
    img.alpha_composite(glyphs, (max(0, (d - tw) // 2), max(0, round(d / 2 - ink_mid))))
    return np.asarray(img, dtype=np.uint8)


def _bar(w: int, h: int, stripe: int, accent: RGB) -> NDArray[np.uint8]:
    """A translucent dark bar with an accent stripe down its left edge (RGBA)."""
    out = np.zeros((h, w, 4), np.uint8)
    out[..., 3] = 150
    out[:, :stripe, :3] = accent
    out[:, :stripe, 3] = 255
    return out
