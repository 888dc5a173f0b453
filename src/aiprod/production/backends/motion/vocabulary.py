"""What a scene looks like, from what it says: a small offline visual vocabulary.

Words of a scene's `visual` line, its on-screen text and its narration (in
that order of authority) are matched against a table of themes: coffee gives
warm browns and a cup, sleep a deep blue and a moon, money greens and a coin
(English plus common French, Spanish and German words).  A theme is a palette,
two motifs and an icon that the renderer draws procedurally (`icons`).

Variety is built in rather than hoped for.  The renderer sees one scene at a
time, so adjacent scenes are kept apart by their index: every theme names a
"dark" motif (particles, geometric) for even scenes and a "full" one (waves,
gradient) for odd scenes, so two neighbours never share a motif, and the odd
scene's palette is lifted towards its light end, so their colour histograms
differ too.  A scene that matches several themes rotates through them by index.

An explicit style wins: a scene's own `style`, or a request style whose palette
or motif differs from the defaults (ocean, particles), is honoured field by
field; the defaults mean "let the vocabulary choose".  (Stored requests carry
every field, so "set by the user" is only knowable as "not the default".)
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from aiprod.production.models import Palette, Scene, VisualMotif, VisualStyle

DEFAULT_STYLE = VisualStyle()


@dataclass(frozen=True)
class Theme:
    name: str
    palette: tuple[str, ...]  # 5 colours, any order (the renderer sorts by luminance)
    motifs: tuple[VisualMotif, VisualMotif]  # (even scenes: dark motif, odd: full motif)
    icon: str | None


def _t(name: str, palette: str, motifs: str, icon: str | None) -> Theme:
    a, b = motifs.split()
    return Theme(name, tuple(palette.split()), (a, b), icon)  # type: ignore[arg-type]


THEMES: dict[str, Theme] = {
    t.name: t
    for t in (
        _t("coffee", "#1b0f0a #3e2418 #7b4a2e #c08552 #f3d9b1", "particles waves", "cup"),
        _t("sleep", "#050a24 #0f1e4a #27407a #6b7fc4 #e8e6c8", "particles gradient", "moon"),
        _t("money", "#04180f #0b3d26 #17804f #4cc38a #e6d36b", "geometric gradient", "coin"),
        _t("nature", "#10260f #2f5d1e #6a9a2b #e3b505 #fbe7a1", "particles waves", "flower"),
        _t("honey", "#2a1602 #6b3a05 #c7780a #f2b33d #ffe8a3", "geometric waves", "hexagon"),
        _t("tech", "#0a0221 #3a0ca3 #f72585 #4cc9f0 #b8f35a", "geometric gradient", "chip"),
        _t("health", "#2a0612 #6d1231 #c2185b #f06292 #ffd6e0", "particles waves", "heart"),
        _t("travel", "#0b2545 #13315c #1f7a8c #bfdbf7 #ffb347", "geometric gradient", "plane"),
        _t("food", "#2b0f06 #7a2e0e #d35400 #f39c12 #fdebd0", "particles waves", "bowl"),
        _t("music", "#12002b #3d0a6b #8e2de2 #f15bb5 #fee440", "particles waves", "note"),
        _t("water", "#03254c #0a4d7a #1187a8 #3cc4c9 #a8ecf0", "particles waves", "drop"),
        _t("fire", "#1a0500 #5c1300 #c1440e #f28c28 #ffd166", "particles gradient", "flame"),
        _t("time", "#0f1720 #22313f #34656d #95b8a8 #f4e9cd", "geometric gradient", "clock"),
        _t("idea", "#14110f #34312d #7e7f83 #f3c623 #fff4b8", "particles gradient", "bulb"),
        _t("warning", "#121212 #3a0d0d #b3261e #ffc400 #fff3c4", "geometric gradient", "warning"),
        _t("sun", "#2b1055 #7a1f5c #d7385e #f67e4b #fcd36b", "particles gradient", "sun"),
        _t("growth", "#0b1f3a #1f4e79 #2e86c1 #aab7c4 #f2f4f7", "geometric gradient", "chart"),
        _t("learn", "#1d1a31 #4d2d52 #9a4c95 #f08cae #f6e9d7", "geometric waves", "book"),
        _t("space", "#02010a #1b1446 #4b3f9e #a594f9 #f1f0ff", "particles gradient", "star"),
        _t("winter", "#0a1a2f #1d3b5c #5b8fb9 #b6d0e2 #f5fbff", "particles waves", "snowflake"),
        _t("talk", "#062925 #044a42 #3a9188 #b8e1dd #ffd6a5", "geometric waves", "bubble"),
        _t("security", "#0d1b1e #1e3a3f #3c6e71 #9fc2c4 #e0e0e0", "geometric gradient", "lock"),
        _t("home", "#2d1e2f #5c3d46 #a26769 #d5b9b2 #ece2d0", "geometric waves", "house"),
    )
}
"""The themes: palette, (even, odd) motifs, icon."""

_WORDS: dict[str, str] = {
    "coffee": "coffee café cafe espresso latte cappuccino bean beans brew brewing roast barista "
    "grind kaffee cafetera mug",
    "sleep": "sleep sleeping night nights moon dream dreams bed bedtime nap insomnia tired rest "
    "nuit noche nacht sommeil sueño schlaf dormir",
    "money": "money price prices cost costs $ € £ dollar dollars euro euros cash budget save "
    "saving savings pay invest investing profit cheap expensive bank argent dinero geld prix "
    "precio preis coin coins",
    "nature": "nature flower flowers garden gardens plant plants tree trees leaf leaves forest "
    "spring pollen bloom green fleur fleurs flor flores blume blumen wald bosque",
    "honey": "honey bee bees honeybee honeybees hive beehive nectar wax abeille abeja biene miel",
    "tech": "tech technology data ai computer computers code coding software digital network "
    "cloud app apps algorithm robot robots internet chip online données datos daten",
    "health": "health healthy heart doctor medical medicine fitness exercise body care wellness "
    "santé salud gesundheit cœur coeur corazón herz",
    "travel": "travel travelling traveling plane flight flights trip trips map maps journey "
    "airport vacation holiday tourism voyage viaje reise world",
    "food": "food cook cooking recipe recipes eat eating meal meals kitchen bread pizza dinner "
    "lunch breakfast cuisine comida essen repas",
    "music": "music song songs sound sounds audio melody band concert guitar piano rhythm "
    "musique música musik",
    "water": "water ocean oceans sea seas wave waves river rivers rain lake swim beach eau agua "
    "wasser mer mar meer",
    "fire": "fire flame flames heat hot burn burning fuego feu feuer",
    "time": "time clock hour hours minute minutes deadline schedule late temps tiempo zeit "
    "routine morning",
    "idea": "idea ideas lightbulb bulb think thinking creative creativity insight inspiration "
    "brainstorm idée idee",
    "warning": "warning danger dangerous risk risks mistake mistakes avoid error errors alert "
    "caution problem problems attention beware",
    "sun": "sun sunny solar summer sunrise sunset soleil sol sonne light",
    "growth": "growth grow business sales market marketing chart success increase results "
    "strategy company brand",
    "learn": "learn learning school study book books read reading student students teach "
    "lesson école escuela schule",
    "space": "space rocket planet planets star stars galaxy universe launch startup",
    "winter": "winter snow cold ice frozen hiver invierno nieve schnee",
    "talk": "talk chat message messages email social conversation communication speak",
    "security": "security privacy password passwords safe lock protect protection secure",
    "home": "home house houses maison casa haus",
}
KEYWORDS: dict[str, str] = {w: theme for theme, words in _WORDS.items() for w in words.split()}
"""Word → theme name."""

_GENERIC: tuple[Theme, ...] = tuple(
    _t(f"generic-{name}", " ".join(PALETTES_HEX), motifs, None)
    for name, PALETTES_HEX, motifs in (
        ("ocean", ("#03254c", "#0a4d7a", "#1187a8", "#3cc4c9", "#a8ecf0"), "particles waves"),
        ("sunset", ("#2b1055", "#7a1f5c", "#d7385e", "#f67e4b", "#fcd36b"), "geometric gradient"),
        ("forest", ("#0b2616", "#1d4d2b", "#3f7d3a", "#8cb369", "#e0d59c"), "particles waves"),
        ("neon", ("#0a0221", "#3a0ca3", "#f72585", "#4cc9f0", "#b8f35a"), "geometric gradient"),
        ("corporate", ("#0b1f3a", "#1f4e79", "#2e86c1", "#aab7c4", "#f2f4f7"), "particles waves"),
    )
)
"""Themes for scenes that match no word: chosen by a hash of the scene's text."""

_TOKEN = re.compile(r"[$€£]|[^\W\d_]+", re.UNICODE)
_BOILERPLATE = frozenset(
    "gradient particles geometric waves motion graphics evoking title card end".split()
)
"""Words the built-in planner writes into every `visual` line ("particles motion
graphics evoking …"): they say nothing about the subject."""


def tokens(text: str) -> list[str]:
    """Lower-cased words (and currency signs) of `text`, NFC-normalised."""
    return _TOKEN.findall(unicodedata.normalize("NFC", text).lower())


def themes_in(text: str, *, visual: bool = False) -> list[Theme]:
    """The themes `text` names, in order of first mention, without repeats
    (`visual`: skip the planner's boilerplate words of a `visual` line)."""
    found: list[Theme] = []
    for word in tokens(text):
        if visual and word in _BOILERPLATE:
            continue
        name = KEYWORDS.get(word) or KEYWORDS.get(word.rstrip("s"))
        if name is not None and THEMES[name] not in found:
            found.append(THEMES[name])
    return found


def leading_themes(scene: Scene) -> list[Theme]:
    """The themes of the most authoritative source that names any: the `visual`
    line if it does, else the on-screen text, else the narration."""
    return (
        themes_in(scene.visual, visual=True)
        or themes_in(scene.on_screen_text)
        or themes_in(scene.narration)
    )


@dataclass(frozen=True)
class Look:
    """What a scene's background and decoration are made of."""

    theme: str
    palette: Palette | list[str]
    motif: VisualMotif
    icon: str | None
    lift: float  # 0..1: how far the palette is mixed towards its lightest colour


def choose_look(scene: Scene, style: VisualStyle, *, explicit: bool = False) -> Look:
    """The scene's look: the vocabulary's theme, varied by the scene's index, with
    any explicit style honoured field by field (`explicit`: the style is the
    scene's own, so all of it is honoured)."""
    found = leading_themes(scene)
    if found:
        theme = found[scene.index % len(found)] if scene.kind == "content" else found[0]
    else:
        key = (scene.visual + "\x00" + scene.on_screen_text + "\x00" + scene.narration).strip()
        h = int.from_bytes(hashlib.sha256(key.lower().encode()).digest()[:4], "little")
        theme = _GENERIC[(h + scene.index) % len(_GENERIC)]
    odd = scene.index % 2 == 1
    motif: VisualMotif = theme.motifs[1] if odd else theme.motifs[0]
    palette: Palette | list[str] = list(theme.palette)
    lift = 0.22 if odd else 0.0
    if explicit or style.palette != DEFAULT_STYLE.palette:
        palette, lift = style.palette, 0.0
    if explicit or style.motif != DEFAULT_STYLE.motif:
        motif = style.motif
    return Look(theme.name, palette, motif, theme.icon, lift)
