"""The built-in planner: offline, deterministic storyboards from a prompt or a script.

A prompt becomes an outline (hook, key points drawn from the prompt's own words,
close) whose narration is paced to the target duration at the voice's speaking
rate.  A script is split on explicit scene markers, else paragraphs, else
sentences, and each scene's length follows its narration.  The same request and
seed always give the same storyboard, so the stage cache can trust it.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from aiprod.production.language import shorten_title, thanks, title_case
from aiprod.production.models import (
    CameraMove,
    ProductionRequest,
    Scene,
    Storyboard,
    Transition,
    UserMedia,
)
from aiprod.production.presets import PRESETS

# Seconds of screen time that are not speech: the lead-in before a scene's
# narration and the breath after it.
SCENE_PADDING = 1.0
TITLE_SECONDS = 3.0
END_SECONDS = 3.0
MIN_SCENE = 2.5
TARGET_SCENE = 7.0
TITLE_MAX_CHARS = 120  # Storyboard.title's limit
SCRIPT_CARDS_FROM = 15.0
"""A script whose speech runs this long gets title and end cards."""
SCRIPT_CARD_SECONDS = 2.5

_MARKER = re.compile(
    r"^\s*(?:\[\s*scene[^\]]*\]|#{1,3}\s*scene\b.*|scene\s+\d+\s*[:.\-].*|-{3,}|\*{3,})\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_DIRECTIVE = re.compile(r"^\s*(visual|text|camera|transition)\s*:\s*(.+)$", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?…])\s+")
_WORD = re.compile(r"[\w'’-]+", re.UNICODE)
_LEADING = re.compile(
    r"^(?:please\s+)?(?:make|create|produce|generate|write|explain|describe|show|present)?\s*"
    r"(?:an?\s+|the\s+)?(?:short\s+|quick\s+|brief\s+|\d+[- ]second\s+)?"
    r"(?:film|video|clip|explainer|story|spot|ad|advert|presentation)?\s*"
    r"(?:about|on|explaining|showing|of)?\s+",
    re.IGNORECASE,
)
_STOP = frozenset(
    """a an the and or but of to in on at for with from by about into over under how why what
    when where who which that this these those is are was were be been being it its as so than
    then their there they them we our you your i me my he she his her not no do does did can
    could should would will just very more most some any all each every short long quick film
    video clip make makes made create creates turn turns get gets use uses work works help helps
    take takes show shows explain explains become becomes keep keeps go goes""".split()
)
_CAMERAS: tuple[CameraMove, ...] = ("zoom_in", "pan_right", "zoom_out", "pan_left", "static")

_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_ORDINAL_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_COUNTED = re.compile(
    r"\b(\d{1,2}|" + "|".join(_NUMBERS) + r")\s+(?:\w+\s+){0,2}?"
    r"(tips?|ways?|reasons?|steps?|facts?|mistakes?|ideas?|rules?|habits?|things?|secrets?|"
    r"lessons?|signs?|myths?|tricks?|questions?)\b",
    re.IGNORECASE,
)
_HOW_IT_WORKS = re.compile(r"\bhow\b.+\b(works?|is made|are made|happens?)\b|\bhow to\b", re.I)
_ITEM_SPLIT = re.compile(r"\s*(?:;|\n|,\s*(?:and\s+)?|\s+and\s+(?=\w+\s))\s*")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
TEMPLATE_NOTE = (
    "Written by the built-in template planner from the prompt's own words: it adds "
    "no facts of its own. Review and edit the narration before rendering (request "
    "review=true, then PATCH the storyboard), or plan with an AI provider."
)


class PlanningError(ValueError):
    """The request cannot be turned into a valid storyboard."""


class BuiltinPlanner:
    name = "builtin"
    version = "2"  # 2: honest template outline, no filler

    def plan(self, request: ProductionRequest) -> Storyboard:
        rng = random.Random(_seed(request))
        notes: list[str] = []
        if request.script is not None:
            title = request.title or _title_from_text(request.script, request.language)
            scenes = _scenes_from_script(request, rng, title)
        else:
            assert request.prompt is not None
            title = request.title or _title_from_text(_topic(request.prompt), request.language)
            scenes = _scenes_from_prompt(request, rng, title, notes)
        _attach_media(scenes, request.media)
        max_scenes = PRESETS[request.preset].max_scenes + 2  # title and end cards are extra
        if len(scenes) > max_scenes:
            raise PlanningError(
                f"the plan needs {len(scenes)} scenes but the {request.preset} preset allows "
                f"{max_scenes - 2} (plus title and end cards); shorten the script or pick "
                "another preset"
            )
        return Storyboard(
            title=title,
            language=request.language,
            scenes=scenes,
            seed=request.seed,
            written_by="template" if request.prompt is not None else "script",
            notes=[TEMPLATE_NOTE, *notes] if request.prompt is not None else notes,
        )


def _seed(request: ProductionRequest) -> int:
    text = (request.prompt or "") + "\x00" + (request.script or "")
    digest = hashlib.sha256(f"{request.seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def speech_seconds(text: str, rate_wpm: int) -> float:
    """Expected narration length: words at the voice's rate plus sentence pauses."""
    words = len(_WORD.findall(text))
    sentences = max(1, len([s for s in _SENTENCE.split(text.strip()) if s]))
    return words * 60.0 / rate_wpm + 0.25 * sentences if words else 0.0


def _topic(prompt: str) -> str:
    first = _SENTENCE.split(prompt.strip())[0].split(":")[0].splitlines()[0].rstrip(".!?… ")
    topic = _LEADING.sub("", first, count=1).strip() or first
    return topic[0].lower() + topic[1:] if topic[:2].istitle() and not topic.isupper() else topic


def _keywords(text: str, limit: int = 12) -> list[str]:
    seen: dict[str, int] = {}
    for w in _WORD.findall(text.lower()):
        if w not in _STOP and len(w) > 2 and not w.isdigit():
            seen[w] = seen.get(w, 0) + 1
    order = sorted(seen, key=lambda w: (-seen[w], list(seen).index(w)))
    return order[:limit]


def _title_from_text(text: str, language: str = "en") -> str:
    """A title from the first sentence of `text`, shortened only at a phrase
    boundary (`language.shorten_title`; the renderer wraps what is left) and cased
    for `language` (English headline case, sentence case elsewhere)."""
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not _MARKER.match(line) and not _DIRECTIVE.match(line)
    ]
    first = _SENTENCE.split(" ".join(lines))[0].strip().rstrip(".!?…") if lines else ""
    title = ""
    for limit in (10, 8, 6, 4, 3):
        title = title_case(shorten_title(first, language, limit), language)
        if len(title) <= TITLE_MAX_CHARS:
            return title or "Untitled"
    # Still too long (a single run-on phrase): the last whole word that fits.
    return title[: TITLE_MAX_CHARS + 1].rsplit(" ", 1)[0][:TITLE_MAX_CHARS] or "Untitled"


def _screen_text(text: str, language: str) -> str:
    """A scene's heading: its first sentence up to a phrase boundary within
    ~6 words ("Fill the kettle halfway"), as written; the keywords when no
    boundary comes early enough (a heading is not a paragraph)."""
    first = _SENTENCE.split(text.strip())[0].strip() if text.strip() else ""
    short = shorten_title(first, language, 6).rstrip(".!?…,;: ")
    if not short or len(short.split()) > 8 or len(short) > 60:
        return _headline(text, 3)
    return short[0].upper() + short[1:]


def _headline(text: str, limit: int = 4) -> str:
    kws = _keywords(text, limit)
    return " · ".join(k.capitalize() for k in kws[:limit]) if kws else ""


def _transition(rng: random.Random) -> Transition:
    return rng.choices(("crossfade", "slide", "cut"), weights=(6, 3, 1))[0]


def _sentence(text: str) -> str:
    """`text` as a spoken sentence: capital first letter, closing punctuation."""
    text = text.strip().strip("-–—:;, ")
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?…" else text + "."


def _outline(prompt: str) -> tuple[str, list[str], str, int]:
    """What the prompt itself says: (topic sentence, items, item label, count).

    Items are the prompt's own list: bulleted or numbered lines, or what
    follows a colon (split at commas, semicolons and "and"), or the sentences
    after the first.  The label and count come from a counted noun in the
    topic ("three tips" -> "Tip", 3) or from "how ... works / how to" ("Step");
    an empty label means plain points.
    """
    lines = [ln for ln in prompt.strip().splitlines() if ln.strip()]
    bullets = [_BULLET.sub("", ln).strip() for ln in lines if _BULLET.match(ln)]
    head = " ".join(ln.strip() for ln in lines if not _BULLET.match(ln))
    sentences = [x for x in _SENTENCE.split(head) if x.strip()]
    first = sentences[0] if sentences else head
    items: list[str] = bullets
    if not items and ":" in first:
        first, _, rest = first.partition(":")
        items = [x for x in _ITEM_SPLIT.split(rest.strip().rstrip(".!?")) if x.strip()]
    if not items:
        items = [x.strip() for x in sentences[1:]]
    label, count = "", 0
    counted = _COUNTED.search(first)
    if counted:
        word = counted.group(1).lower()
        count = int(word) if word.isdigit() else _NUMBERS[word]
        noun = counted.group(2).lower()
        label = (noun[:-1] if noun.endswith("s") else noun).capitalize()
    elif _HOW_IT_WORKS.search(first) and items:
        label = "Step"
    return first.strip().rstrip(".!?… "), items, label, count


def _numbered(label: str, n: int, item: str) -> str:
    ordinal = _ORDINAL_WORDS[n - 1] if n <= len(_ORDINAL_WORDS) else str(n)
    return f"{label} {ordinal}: {item[0].lower() + item[1:]}" if item else f"{label} {ordinal}."


def _scenes_from_prompt(
    request: ProductionRequest, rng: random.Random, title: str, notes: list[str]
) -> list[Scene]:
    """An honest outline of the prompt: its topic, then its own items (numbered
    when it counts them, "Step" for how-it-works), with no sentence the prompt
    did not give.  Scene lengths split the target duration by expected speech;
    the narrate stage then fits them to the real speech."""
    assert request.prompt is not None
    target = request.target_duration
    rate = request.voice.rate
    topic_text, items, label, count = _outline(request.prompt)
    topic = _topic(request.prompt)
    if count:
        if len(items) > count:
            items = items[:count]
        missing = count - len(items)
        if missing:
            first_empty = len(items) + 1
            notes.append(
                f"The prompt asks for {count} {label.lower()}s but names {len(items)}: "
                f"{label.lower()}s {first_empty}-{count} only announce themselves. "
                "Write them in the review gate or plan with an AI provider."
            )
        items = items + [""] * missing
    bodies: list[tuple[str, str]] = []  # (narration, on-screen text)
    if label:
        for n, item in enumerate(items, start=1):
            heading = _screen_text(item, request.language) if item else ""
            bodies.append((_sentence(_numbered(label, n, item)), f"{n} · {heading}".strip(" ·")))
    else:
        bodies = [(_sentence(item), _screen_text(item, request.language)) for item in items]
    intro = _sentence(topic) if topic else _sentence(topic_text) or title
    if not bodies:
        notes.append(
            "The prompt gives one idea and no points to develop, so the video says just "
            "that. List points in the prompt (after a colon or one per line), write a "
            "script, or plan with an AI provider."
        )
    use_title = bool(bodies) and target >= 12
    use_end = target >= 20
    spoken = [(intro, _screen_text(topic, request.language)), *bodies]
    fixed = END_SECONDS if use_end else 0.0
    weights = [speech_seconds(text, rate) + SCENE_PADDING for text, _ in spoken]
    scale = max(0.1, (target - fixed) / sum(weights))
    scenes: list[Scene] = []
    for n, ((narration, screen), weight) in enumerate(zip(spoken, weights, strict=True)):
        is_title = use_title and n == 0
        scenes.append(
            Scene(
                index=n,
                kind="title" if is_title else "content",
                narration=narration,
                visual=f"Title card: {title}" if is_title else narration,
                on_screen_text="" if is_title else screen,  # the card shows the title
                duration=round(max(MIN_SCENE, weight * scale), 3),
                camera="zoom_in" if is_title else _CAMERAS[(n + rng.randrange(5)) % 5],
                transition="crossfade" if is_title else _transition(rng),
                transition_duration=0.6 if is_title else 0.5,
            )
        )
    if use_end:
        scenes.append(_end_card(len(scenes), END_SECONDS, request.language))
    _fix_last_transition(scenes)
    # Transitions overlap scenes; give the overlap back to the narrated scenes
    # so the planned timeline meets the target.
    narrated = [sc for sc in scenes if sc.narration]
    stretch = (target - Storyboard(title=title, scenes=scenes).duration) / len(narrated)
    for sc in narrated:
        sc.duration = round(max(MIN_SCENE, sc.duration + stretch), 3)
    return scenes


def split_script(script: str) -> list[str]:
    """Scene blocks: explicit markers first, then blank-line paragraphs, then sentences."""
    if _MARKER.search(script):
        blocks = [b.strip() for b in _MARKER.split(script)]
        return [b for b in blocks if b]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", script) if p.strip()]
    if len(paragraphs) > 1:
        return paragraphs
    sentences = [s.strip() for s in _SENTENCE.split(script.strip()) if s.strip()]
    # Group sentences into scenes of about TARGET_SCENE seconds at 165 wpm.
    groups: list[str] = []
    current: list[str] = []
    for s in sentences:
        current.append(s)
        if speech_seconds(" ".join(current), 165) >= TARGET_SCENE - SCENE_PADDING:
            groups.append(" ".join(current))
            current = []
    if current:
        groups.append(" ".join(current))
    return groups


def _scenes_from_script(request: ProductionRequest, rng: random.Random, title: str) -> list[Scene]:
    assert request.script is not None
    blocks = split_script(request.script)
    if not blocks:
        raise PlanningError("the script has no text to narrate")
    rate = request.voice.rate
    parsed: list[tuple[str, dict[str, str]]] = []
    for block in blocks:
        directives: dict[str, str] = {}
        lines = []
        for line in block.splitlines():
            m = _DIRECTIVE.match(line)
            if m:
                directives[m.group(1).lower()] = m.group(2).strip()
            else:
                lines.append(line.strip())
        parsed.append((" ".join(x for x in lines if x), directives))
    natural = [max(MIN_SCENE, speech_seconds(text, rate) + SCENE_PADDING) for text, _ in parsed]
    cards = max(sum(natural), request.duration or 0.0) >= SCRIPT_CARDS_FROM
    scale = 1.0
    if request.duration is not None:
        total = sum(natural)
        room = request.duration - (2 * SCRIPT_CARD_SECONDS if cards else 0.0)
        # Stretch to fill the requested length; never squeeze below the speech itself.
        scale = max(1.0, room / total) if total else 1.0
    scenes = []
    for i, ((text, d), length) in enumerate(zip(parsed, natural, strict=True)):
        camera = d.get("camera", _CAMERAS[(i + rng.randrange(len(_CAMERAS))) % len(_CAMERAS)])
        transition = d.get("transition", _transition(rng))
        scenes.append(
            Scene.model_validate(
                {
                    "index": i,
                    "narration": text,
                    "visual": d.get("visual", f"{request.style.motif} motion graphics"),
                    "on_screen_text": d.get("text", _screen_text(text, request.language)),
                    "duration": round(min(120.0, length * scale), 3),
                    "camera": camera,
                    "transition": transition,
                    "transition_duration": 0.5,
                }
            )
        )
    if cards:
        scenes = _with_cards(scenes, title, request.language)
    _fix_last_transition(scenes)
    return scenes


def _with_cards(scenes: list[Scene], title: str, language: str) -> list[Scene]:
    """A silent title card before a script's scenes and an end card after them
    (scene indices shift by one: media name storyboard scenes)."""
    out = [
        Scene(
            index=0,
            kind="title",
            duration=SCRIPT_CARD_SECONDS,
            visual=f"Title card: {title}",
            camera="zoom_in",
            transition="crossfade",
            transition_duration=0.6,
        )
    ]
    out += [sc.model_copy(update={"index": i + 1}) for i, sc in enumerate(scenes)]
    out.append(_end_card(len(out), SCRIPT_CARD_SECONDS, language))
    if out[-2].transition == "cut":
        out[-2].transition = "crossfade"
    return out


def _end_card(index: int, duration: float, language: str) -> Scene:
    return Scene(
        index=index,
        kind="end",
        duration=duration,
        visual="End card",
        on_screen_text=thanks(language),
        camera="zoom_out",
        transition="cut",
    )


def _fix_last_transition(scenes: list[Scene]) -> None:
    scenes[-1].transition = "cut"


def _attach_media(scenes: Sequence[Scene], media: Sequence[UserMedia]) -> None:
    for m in media:
        if m.scene >= len(scenes):
            raise PlanningError(
                f"media {m.path.name} is for scene {m.scene} but the storyboard has "
                f"{len(scenes)} scenes (0..{len(scenes) - 1})"
            )
        scenes[m.scene].media = m


SPEECH_SHARE = 0.8
"""Of a prompt's speaking time, the share narrated (the rest: breaths, pauses)."""


@dataclass(frozen=True)
class Pacing:
    """How much narration the model is asked for."""

    rate: float  # words per minute the voice really speaks
    scenes: int  # content scenes asked for
    max_scenes: int  # the preset's cap
    words: int  # narration words in all
    cards: bool  # title and end cards are added

    @property
    def words_per_scene(self) -> int:
        return max(3, round(self.words / self.scenes))


def pacing(request: ProductionRequest, rate: float) -> Pacing:
    """Scenes and words a prompt's narration is sized to at `rate` words per
    minute (the chat planner asks its model for this much; the cost estimate
    counts it before the model has written a word)."""
    target = request.target_duration
    cards = target >= SCRIPT_CARDS_FROM
    speaking = max(1.0, target - (2 * SCRIPT_CARD_SECONDS if cards else 0.0))
    max_scenes = PRESETS[request.preset].max_scenes
    scenes = min(max_scenes, max(1, round(speaking / TARGET_SCENE)))
    words = max(scenes * 3, int(speaking * rate / 60.0 * SPEECH_SHARE))
    return Pacing(rate=rate, scenes=scenes, max_scenes=max_scenes, words=words, cards=cards)
