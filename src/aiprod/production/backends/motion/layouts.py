"""Which shape a scene's text takes, and where text may go: pure functions.

`choose_layout` reads a scene the way an explainer editor would: a card
(kind title/end), a numbered tip ("2 · Grind fresh", or narration that opens
"Tip 2:"), a big figure ("$149", "40 settings", "−33 %", "3x"), a quote (text in
quotation marks), a comparison ("Tea vs coffee"), a lower third (the user's
photo or video fills the frame, so the heading keeps out of its way), else a
headline with the theme's icon, whose side alternates scene to scene.

`safe_area` is the part of the frame where text stays clear of the platforms'
own interface: 9:16 feeds (TikTok, Reels, Shorts) draw buttons down the right
and captions over the bottom, so text keeps out of the top 12 %, the bottom
20 % and the right 15 %; square posts get a 6 % margin; 16:9 the classic 5 %
title-safe margin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from aiprod.production.models import Scene

LayoutKind = Literal[
    "title", "end", "numbered", "figure", "quote", "comparison", "lower_third", "headline"
]


@dataclass(frozen=True)
class Layout:
    kind: LayoutKind
    heading: str = ""  # the main words (list heading, figure label, quote, left side…)
    big: str = ""  # the numeral or the figure
    other: str = ""  # the comparison's right side
    side: Literal["left", "right", "center"] = "center"  # headline: where the icon sits


_NUMBERED = re.compile(r"^\s*(?:#\s*)?(\d{1,2})\s*[·•.:)/\-–—](?!\d)\s*(\S.*)$")
_STEP = re.compile(
    r"^\s*(?:tip|step|rule|point|reason|lesson|habit|mistake|part|day|"
    r"étape|etape|conseil|astuce|paso|consejo|regla|schritt|tipp|regel)\s*"
    r"(?:n[°o.]\s*|#\s*)?(\d{1,2})\b\s*[:.,\-–—]?\s*(.*)$",
    re.IGNORECASE,
)
_FIGURE = re.compile(
    r"^\s*((?:[$€£¥]\s?)?[−\-+]?\d[\d,.\s]*?\d?(?:\s?(?:%|x|×|k|m|bn|h|s|min))?(?:\s?[$€£¥])?)"
    r"(?=\s|$)\s*(.*)$",
    re.IGNORECASE,
)
_QUOTE = re.compile(r"^\s*[\"“”«„‘'’]\s*(.+?)\s*[\"“”»’'‘]\s*(?:[-–—]\s*(.+))?$")
_VERSUS = re.compile(r"^(.+?)\s+(?:vs\.?|versus|contre|gegen|frente a)\s+(.+)$", re.IGNORECASE)


def _clean(text: str) -> str:
    return " ".join(text.split())


def choose_layout(scene: Scene) -> Layout:
    """The scene's layout and its parts, from its kind, media and text."""
    text = _clean(scene.on_screen_text)
    if scene.kind in ("title", "end"):
        return Layout(scene.kind, heading=text)
    if scene.media is not None:
        return Layout("lower_third", heading=text, side="left")
    if m := _VERSUS.match(text):
        return Layout("comparison", heading=m.group(1).strip(), other=m.group(2).strip())
    if m := _QUOTE.match(text):
        return Layout("quote", heading=m.group(1), other=(m.group(2) or "").strip())
    if m := _NUMBERED.match(text):
        return Layout("numbered", heading=m.group(2).strip(), big=m.group(1))
    if m := _STEP.match(_clean(scene.narration)):
        heading = text or _first_words(m.group(2))
        return Layout("numbered", heading=heading, big=m.group(1))
    if (m := _FIGURE.match(text)) and len(text.split()) <= 5 and _is_figure(m.group(1)):
        return Layout("figure", heading=m.group(2).strip(), big=m.group(1).strip())
    side: Literal["left", "right", "center"] = "center" if scene.index % 2 == 0 else "left"
    return Layout("headline", heading=text, side=side)


def _is_figure(token: str) -> bool:
    """A figure has digits and is not a bare list number or year-like label alone."""
    return any(c.isdigit() for c in token)


def _first_words(text: str, n: int = 5) -> str:
    words = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].split()
    return " ".join(words[:n]).rstrip(",.;:")


def safe_area(width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in pixels: where text may be drawn on this frame shape."""
    aspect = width / height
    if aspect < 0.75:  # vertical (9:16): platform UI on the right and bottom
        return (round(width * 0.06), round(height * 0.12), round(width * 0.85), round(height * 0.8))
    if aspect < 1.34:  # square-ish (1:1, 4:5)
        m = 0.06
        return (
            round(width * m),
            round(height * m),
            round(width * (1 - m)),
            round(height * (1 - m)),
        )
    mx, my = 0.05, 0.07
    return (
        round(width * mx),
        round(height * my),
        round(width * (1 - mx)),
        round(height * (1 - my)),
    )
