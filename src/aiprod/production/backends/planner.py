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

from aiprod.production.language import shorten_title, title_case
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

_MARKER = re.compile(
    r"^\s*(?:\[\s*scene[^\]]*\]|#{1,3}\s*scene\b.*|scene\s+\d+\s*[:.\-].*|-{3,}|\*{3,})\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_DIRECTIVE = re.compile(r"^\s*(visual|text|camera|transition)\s*:\s*(.+)$", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?…])\s+")
_WORD = re.compile(r"[\w'’-]+", re.UNICODE)
_LEADING = re.compile(
    r"^(?:please\s+)?(?:make|create|produce|generate|write)?\s*"
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

_HOOKS = (
    "Have you ever wondered {topic}?",
    "Here is a closer look at {topic}.",
    "Let's explore {topic}, step by step.",
)
_POINTS = (
    "It begins with {kw}, and everything else follows from it.",
    "Think about {kw} for a moment: it matters more than it seems.",
    "Next comes {kw}, where the real work happens.",
    "Then there is {kw}, a detail that is easy to overlook.",
    "Look closely at {kw} and a pattern appears.",
    "{Kw} connects the pieces together.",
    "With {kw}, small changes add up to large effects.",
    "Experts point to {kw} as the key to understanding it.",
)
_FILLERS = (
    "Each step depends on the one before it.",
    "Timing and care make all the difference here.",
    "It is a process refined over a very long time.",
    "The result is more remarkable than it first appears.",
    "Seen together, the parts form a clear picture.",
    "Nothing here happens by accident.",
    "Every part has a purpose.",
    "The details tell the real story.",
    "Small things, repeated, become big things.",
    "Watch how it unfolds.",
)
_CLOSES = (
    "And that is {topic}, in a nutshell.",
    "Now you know the story of {topic}.",
    "Next time, remember {topic}.",
)


class PlanningError(ValueError):
    """The request cannot be turned into a valid storyboard."""


class BuiltinPlanner:
    name = "builtin"
    version = "1"

    def plan(self, request: ProductionRequest) -> Storyboard:
        rng = random.Random(_seed(request))
        if request.script is not None:
            scenes = _scenes_from_script(request, rng)
            title = request.title or _title_from_text(request.script, request.language)
        else:
            assert request.prompt is not None
            title = request.title or _title_from_text(_topic(request.prompt), request.language)
            scenes = _scenes_from_prompt(request, rng, title)
        _attach_media(scenes, request.media)
        max_scenes = PRESETS[request.preset].max_scenes + 2  # title and end cards are extra
        if len(scenes) > max_scenes:
            raise PlanningError(
                f"the plan needs {len(scenes)} scenes but the {request.preset} preset allows "
                f"{max_scenes - 2} (plus title and end cards); shorten the script or pick "
                "another preset"
            )
        return Storyboard(title=title, language=request.language, scenes=scenes, seed=request.seed)


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
    first = _SENTENCE.split(prompt.strip())[0].rstrip(".!?… ")
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


def _headline(text: str, limit: int = 4) -> str:
    kws = _keywords(text, limit)
    return " · ".join(k.capitalize() for k in kws[:limit]) if kws else ""


def _transition(rng: random.Random) -> Transition:
    return rng.choices(("crossfade", "slide", "cut"), weights=(6, 3, 1))[0]


def _scenes_from_prompt(request: ProductionRequest, rng: random.Random, title: str) -> list[Scene]:
    assert request.prompt is not None
    target = request.target_duration
    rate = request.voice.rate
    topic = _topic(request.prompt)
    keywords = _keywords(topic) or _keywords(request.prompt) or [topic]
    use_title = target >= 12
    use_end = target >= 20
    body = target - (TITLE_SECONDS if use_title else 0) - (END_SECONDS if use_end else 0)
    preset_cap = PRESETS[request.preset].max_scenes
    needed_for_media = max((m.scene for m in request.media), default=-1) + 1 - int(use_title)
    count = max(1, round(body / TARGET_SCENE), needed_for_media)
    count = min(count, preset_cap, max(1, int(body // MIN_SCENE)))
    per_scene = body / count

    scenes: list[Scene] = []
    if use_title:
        scenes.append(
            Scene(
                index=0,
                kind="title",
                duration=TITLE_SECONDS,
                visual=f"Title card: {title}",
                on_screen_text=_headline(topic, 3),
                camera="zoom_in",
                transition="crossfade",
                transition_duration=0.6,
            )
        )
    points = list(_POINTS)
    rng.shuffle(points)
    fillers = list(_FILLERS)
    rng.shuffle(fillers)
    next_filler = 0
    for n in range(count):
        budget = max(0.0, per_scene - SCENE_PADDING)
        if n == 0:
            sentences = [rng.choice(_HOOKS).format(topic=topic)]
        elif n == count - 1 and count > 1:
            sentences = [rng.choice(_CLOSES).format(topic=topic)]
        else:
            kw = keywords[(n - 1) % len(keywords)]
            sentences = [points[(n - 1) % len(points)].format(kw=kw, Kw=kw.capitalize())]
        for _ in range(3):
            extra = fillers[next_filler % len(fillers)]
            if speech_seconds(" ".join([*sentences, extra]), rate) > budget:
                break
            sentences.insert(-1 if n == count - 1 and count > 1 else len(sentences), extra)
            next_filler += 1
        while len(sentences) > 1 and speech_seconds(" ".join(sentences), rate) > budget:
            sentences.pop(1 if n == count - 1 and count > 1 else -1)
        narration = " ".join(sentences)
        focus = keywords[n % len(keywords)]
        scenes.append(
            Scene(
                index=len(scenes),
                narration=narration,
                visual=f"{request.style.motif} motion graphics evoking {focus}",
                on_screen_text=focus.capitalize() if n else _headline(topic, 2),
                duration=round(per_scene, 3),
                camera=_CAMERAS[(n + rng.randrange(len(_CAMERAS))) % len(_CAMERAS)],
                transition=_transition(rng),
                transition_duration=0.5,
            )
        )
    if use_end:
        scenes.append(
            Scene(
                index=len(scenes),
                kind="end",
                duration=END_SECONDS,
                visual="End card",
                on_screen_text="Thanks for watching",
                camera="zoom_out",
                transition="cut",
            )
        )
    _fix_last_transition(scenes)
    # Transitions overlap scenes; give the overlap back to the content scenes so
    # the timeline meets the target.
    content = [sc for sc in scenes if sc.kind == "content"]
    stretch = (target - Storyboard(title=title, scenes=scenes).duration) / len(content)
    for sc in content:
        sc.duration = round(sc.duration + stretch, 3)
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


def _scenes_from_script(request: ProductionRequest, rng: random.Random) -> list[Scene]:
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
    scale = 1.0
    if request.duration is not None:
        total = sum(natural)
        # Stretch to fill the requested length; never squeeze below the speech itself.
        scale = max(1.0, request.duration / total) if total else 1.0
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
                    "on_screen_text": d.get("text", _headline(text, 3)),
                    "duration": round(min(120.0, length * scale), 3),
                    "camera": camera,
                    "transition": transition,
                    "transition_duration": 0.5,
                }
            )
        )
    _fix_last_transition(scenes)
    return scenes


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
