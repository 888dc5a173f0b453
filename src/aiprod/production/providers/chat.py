"""The ``openai-chat`` planner: a storyboard written by a chat model.

Speaks the OpenAI Chat Completions wire format (``POST {base}/chat/completions``
with a ``json_schema`` response format, ``strict``), so it serves OpenAI and any
compatible server: Ollama, vLLM, LM Studio, a gateway.  ``Authorization:
Bearer`` is sent only when a key is configured (a local server needs none).

How a plan is made:

* **Pacing.**  The narration is sized before the model writes it: the word
  budget is the speaking time (the target duration less the title and end
  cards) at the voice's real rate (``narrators.speaking_rate`` for the
  built-in narrators, measured once per process; the request's ``voice.rate``
  for a remote one, whose measuring would be a paid call) times 0.8, split
  over about one scene per 7 seconds (within the preset's cap).  The model is
  told the scene count and the words per scene; after it answers, each
  scene's length is computed from its words at that rate plus the lead and
  breath the narrate stage gives it, and the title and end cards the built-in
  planner adds are added (its helpers, ``backends/planner.py``).
* **Repair.**  The answer is parsed (Markdown fences tolerated) and checked
  against the schema and the limits of ``models.Scene``; an answer that is not
  valid, or that the token limit cut off (``finish_reason: "length"``), is sent
  back with what was wrong, at most ``MAX_ATTEMPTS`` calls in all, after
  which ``ChatPlanningError`` says why.  A refusal ends it at once.  HTTP
  failures are the client's ``ProviderError`` (retried there on 429/5xx).
* **Prompt injection.**  The user's prompt or script travels only as a
  JSON-encoded field of the user message; the system message says that it is
  material to write about and never instructions.  The model's answer is
  only ever data: every field is type-checked, stripped of control and
  bidirectional-override characters and capped at the storyboard's lengths;
  search terms keep letters, digits, spaces and hyphens only; the music mood
  must be one of ``MusicMood`` (the messages, schema and checks live in
  ``chat_answer``).
* **Scripts keep their words.**  For a ``script`` request the narration is
  the user's script, verbatim, split into scenes exactly as the built-in
  planner splits it (markers, paragraphs, sentences; ``visual:``/``text:``
  directives win); the model is asked only for a title, a music mood and, per
  given narration chunk, the visual, on-screen text and search terms.  So a
  model can neither drop nor add a word of what the user wrote.
* **Cost.**  Before each call the meter authorises the most the call can use
  (the estimated prompt tokens plus ``max_tokens``); after it, the tokens the
  service reports (``usage.total_tokens``) are charged, or characters / 4 when
  it reports none (a note on the storyboard says so).  The plan stage caches
  the storyboard, so the same request never pays twice.
* **Music.**  The model's ``music_mood`` is used only where the request left
  the mood to the topic (``music`` absent or ``"auto"``); a mood the user
  chose, or no music, stands.
"""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import dataclass, field
from typing import Any

from aiprod.production import backends
from aiprod.production.backends.planner import (
    _CAMERAS,
    _DIRECTIVE,
    MIN_SCENE,
    TITLE_MAX_CHARS,
    Pacing,
    PlanningError,
    _attach_media,
    _fix_last_transition,
    _scenes_from_script,
    _seed,
    _title_from_text,
    _topic,
    _transition,
    _with_cards,
    pacing,
    speech_seconds,
    split_script,
)
from aiprod.production.models import (
    ProductionRequest,
    Scene,
    Storyboard,
)
from aiprod.production.moods import mood_for
from aiprod.production.providers import client_for, config_of, metering
from aiprod.production.providers.chat_answer import (
    VISUAL_CHARS,
    Draft,
    InvalidAnswer,
    answer_schema,
    clean_text,
    parse_answer,
    repair_message,
    system_message,
    user_message,
    validate_answer,
)
from aiprod.production.providers.client import ProviderClient, ProviderError, bearer
from aiprod.production.stages.narrate import NARRATION_LEAD, NARRATION_TAIL

log = logging.getLogger(__name__)

NAME = "openai-chat"
CALL = "chat.completions"
UNIT = "1k_tokens"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
MAX_ATTEMPTS = 3
"""Of the speaking time, the share the narration is sized to fill (room for pauses)."""
TEMPERATURE = 0.7
CHARS_PER_TOKEN = 4.0
MAX_OUTPUT_TOKENS = 16_000
REASONING_TOKENS = 4_000  # a reasoning model's thinking counts against its token limit
_REASONING_MODEL = re.compile(r"^(?:o\d|gpt-5)", re.IGNORECASE)


class ChatPlanningError(ProviderError, PlanningError):
    """The chat model gave no usable storyboard: invalid answers ``MAX_ATTEMPTS``
    times, or a refusal.  A ProviderError (provider ``openai-chat``, call
    ``chat.completions``; the Pipeline's fallback applies) and a PlanningError
    (a ValueError: retrying the same request is unlikely to help)."""

    def __init__(self, reason: str) -> None:
        super().__init__(NAME, CALL, reason, transient=False)


@dataclass
class _Usage:
    """What the calls of one plan leave to say (an estimated charge)."""

    estimated: bool = False
    notes: list[str] = field(default_factory=list)


def voice_rate(request: ProductionRequest) -> float:
    """Words per minute the request's voice really speaks: measured for the
    built-in narrators (cheap, cached per process), else ``voice.rate``."""
    narrator = request.backends.get("narrate")
    if narrator is None or narrator not in backends.PROVIDERS:
        try:
            from aiprod.production.backends.narrators import speaking_rate

            return float(speaking_rate(request.voice, request.language, narrator))
        except Exception as exc:  # any failure: the nominal rate is a fine estimate
            log.info("openai-chat: speaking rate not measured (%s); using voice.rate", exc)
    return float(request.voice.rate)


def auto_mood(request: ProductionRequest) -> bool:
    """Whether the request's music mood is the automatic pick (the planner may choose)."""
    words = " ".join(w for w in (request.title, request.prompt, request.script) if w)
    return request.music is not None and request.music == mood_for(words)


# ------------------------------------------------------------------- planner


class ChatPlanner:
    """Plans with an OpenAI-compatible chat model (``AIPROD_OPENAI_CHAT__*``)."""

    name = NAME
    version = "1"

    # The plan stage caches a provider's storyboard; these enter its key.
    def cache_identity(self) -> dict[str, Any]:
        config = config_of(NAME)
        return {"model": self.model(), "base_url": config.base_url or DEFAULT_BASE_URL}

    @staticmethod
    def model() -> str:
        return config_of(NAME).model or DEFAULT_MODEL

    def plan(self, request: ProductionRequest) -> Storyboard:
        rate = voice_rate(request)
        pace = pacing(request, rate)
        rng = random.Random(_seed(request))
        usage = _Usage()
        if request.script is not None:
            return self._plan_script(request, pace, rng, usage)
        draft = self._ask(request, pace, None, usage)
        title = (
            request.title
            or draft.title
            or _title_from_text(_topic(request.prompt or ""), request.language)
        )
        scenes = self._content(request, draft, pace, rng)
        if pace.cards:
            scenes = _with_cards(scenes, title, request.language)
        _fix_last_transition(scenes)
        if request.duration is not None:
            _fill(scenes, title, request.duration)
        model = self.model()
        notes = [
            f"Written by the AI model {model} (openai-chat). Review the narration before "
            "rendering (request review=true, then PATCH the storyboard).",
            *usage.notes,
        ]
        return self._storyboard(request, title, scenes, draft, notes)

    # ----------------------------------------------------------------- script

    def _plan_script(
        self, request: ProductionRequest, pace: Pacing, rng: random.Random, usage: _Usage
    ) -> Storyboard:
        """The script's own scenes (the built-in planner's split, paced at the
        voice's real rate); the model adds the title, mood and the looks."""
        assert request.script is not None
        voice = request.voice.model_copy(update={"rate": min(400, max(80, round(pace.rate)))})
        paced = request.model_copy(update={"voice": voice})
        provisional = request.title or _title_from_text(request.script, request.language)
        scenes = _scenes_from_script(paced, rng, provisional)
        content = [s for s in scenes if s.kind == "content"]
        if len(content) > pace.max_scenes:
            raise PlanningError(
                f"the script has {len(content)} scenes but the {request.preset} preset allows "
                f"{pace.max_scenes}; shorten the script or pick another preset"
            )
        given = [_directives(block) for block in split_script(request.script)]
        draft = self._ask(request, pace, [s.narration for s in content], usage)
        for scene, looks, own in zip(content, draft.scenes, given, strict=True):
            if "visual" not in own and looks.visual:
                scene.visual = looks.visual
            if "text" not in own:
                scene.on_screen_text = looks.on_screen_text
            scene.search_terms = looks.search_terms
        title = request.title or draft.title or provisional
        for scene in scenes:
            if scene.kind == "title":
                scene.visual = f"Title card: {title}"
        model = self.model()
        notes = [
            f"The narration is your script, word for word; the AI model {model} "
            "(openai-chat) chose the title, the visuals and the on-screen text.",
            *usage.notes,
        ]
        return self._storyboard(request, title, scenes, draft, notes)

    # ---------------------------------------------------------------- shared

    def _content(
        self, request: ProductionRequest, draft: Draft, pace: Pacing, rng: random.Random
    ) -> list[Scene]:
        """The model's scenes, each as long as its speech at the voice's rate
        plus the narrate stage's lead and breath."""
        pad = max(NARRATION_LEAD + NARRATION_TAIL, 0.5 + request.breath)
        scenes = []
        for i, d in enumerate(draft.scenes):
            speech = speech_seconds(d.narration, round(pace.rate))
            scenes.append(
                Scene(
                    index=i,
                    narration=d.narration,
                    visual=d.visual or clean_text(d.narration, VISUAL_CHARS),
                    on_screen_text=d.on_screen_text,
                    search_terms=d.search_terms,
                    duration=round(min(120.0, max(MIN_SCENE, speech + pad)), 3),
                    camera=_CAMERAS[(i + rng.randrange(len(_CAMERAS))) % len(_CAMERAS)],
                    transition=_transition(rng),
                    transition_duration=0.5,
                )
            )
        return scenes

    def _storyboard(
        self,
        request: ProductionRequest,
        title: str,
        scenes: list[Scene],
        draft: Draft,
        notes: list[str],
    ) -> Storyboard:
        _attach_media(scenes, request.media)
        return Storyboard(
            title=clean_text(title, TITLE_MAX_CHARS) or "Untitled",
            language=request.language,
            scenes=scenes,
            seed=request.seed,
            written_by=f"{NAME}:{self.model()}"[:64],
            music_mood=draft.mood if auto_mood(request) else None,
            notes=[clean_text(n, 1000) for n in notes][:20],
        )

    # ------------------------------------------------------------------ call

    def _ask(
        self,
        request: ProductionRequest,
        pace: Pacing,
        chunks: list[str] | None,
        usage: _Usage,
    ) -> Draft:
        """Ask until the answer is valid, at most ``MAX_ATTEMPTS`` calls."""
        client = client_for(NAME, DEFAULT_BASE_URL, auth_headers=bearer)
        model = self.model()
        schema = answer_schema(script=chunks is not None)
        messages: list[dict[str, str]] = [
            {
                "role": "system",
                "content": system_message(request, pace, len(chunks) if chunks else None),
            },
            {"role": "user", "content": user_message(request, chunks)},
        ]
        # Room for the answer: ~3 tokens a word of narration (generous outside
        # English) and ~120 per scene for the rest of its fields.
        words, scenes = (pace.words, 2 * pace.scenes) if chunks is None else (0, len(chunks))
        max_tokens = min(MAX_OUTPUT_TOKENS, 800 + 3 * words + 120 * min(scenes, pace.max_scenes))
        problems: list[str] = []
        for _attempt in range(MAX_ATTEMPTS):
            payload: dict[str, Any] = {
                "model": model,
                "messages": messages,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "storyboard", "strict": True, "schema": schema},
                },
                "seed": request.seed,
            }
            if _REASONING_MODEL.match(model):
                # o-series and gpt-5 take no temperature, and think within this limit
                payload["max_completion_tokens"] = max_tokens + REASONING_TOKENS
            else:
                payload["max_tokens"] = max_tokens
                payload["temperature"] = TEMPERATURE
            limit = payload.get("max_completion_tokens", max_tokens)
            content, finish = self._call(client, payload, limit, usage)
            try:
                if finish == "length":
                    raise InvalidAnswer(
                        "it was cut off at the length limit (finish_reason 'length'); keep "
                        "every field short so that the whole object fits"
                    )
                if not content.strip():
                    raise InvalidAnswer("it was empty")
                return validate_answer(parse_answer(content), pace, chunks, request)
            except InvalidAnswer as exc:
                problem = str(exc)
                problems.append(problem[:300])
                log.info("openai-chat: answer %d invalid: %s", len(problems), problem)
                if finish == "length":
                    max_tokens = min(MAX_OUTPUT_TOKENS, round(max_tokens * 1.5))
                messages = [
                    *messages,
                    {"role": "assistant", "content": content[:20_000]},
                    {"role": "user", "content": repair_message(problem)},
                ]
        raise ChatPlanningError(
            f"invalid storyboard JSON {MAX_ATTEMPTS} times: " + "; ".join(problems)
        )

    def _call(
        self, client: ProviderClient, payload: dict[str, Any], max_tokens: int, usage: _Usage
    ) -> tuple[str, str | None]:
        """One paid call: authorised first, charged after.  Returns the answer's
        text and its finish reason; raises ChatPlanningError on a refusal."""
        meter = metering.current()
        sent = json.dumps(payload["messages"], ensure_ascii=False) + json.dumps(
            payload["response_format"]
        )
        prompt_tokens = len(sent) / CHARS_PER_TOKEN
        meter.authorize(NAME, UNIT, (prompt_tokens + max_tokens) / 1000)
        body = client.json(CALL, "POST", "/chat/completions", json=payload)
        try:
            choice = body["choices"][0]
            message = choice["message"]
            content = message.get("content")
            refusal = message.get("refusal")
            finish = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError):
            self._charge(meter, body, prompt_tokens, "", usage)
            raise ProviderError(
                NAME, CALL, "the answer has no choices[0].message", transient=True
            ) from None
        text = content if isinstance(content, str) else ""
        self._charge(meter, body, prompt_tokens, text, usage)
        if isinstance(refusal, str) and refusal.strip():
            raise ChatPlanningError(f"the model refused: {clean_text(refusal, 300)}")
        if finish == "content_filter":
            raise ChatPlanningError("the service's content filter stopped the answer")
        return text, finish if isinstance(finish, str) else None

    @staticmethod
    def _charge(
        meter: metering.Meter, body: Any, prompt_tokens: float, text: str, usage: _Usage
    ) -> None:
        """Charge the tokens the service reports (``usage.total_tokens``, else
        prompt + completion), else an estimate from characters (noted)."""
        reported = body.get("usage") if isinstance(body, dict) else None
        counts = reported if isinstance(reported, dict) else {}
        total = _count(counts.get("total_tokens"))
        if total is None:
            prompt, completion = (
                _count(counts.get(k)) for k in ("prompt_tokens", "completion_tokens")
            )
            total = prompt + completion if prompt is not None and completion is not None else None
        if total is None:
            total = round(prompt_tokens + len(text) / CHARS_PER_TOKEN)
            if not usage.estimated:
                usage.estimated = True
                usage.notes.append(
                    "The chat service reported no token usage: the charge is estimated from "
                    "the characters sent and received (4 per token)."
                )
        meter.charge(NAME, CALL, UNIT, total / 1000)


def _count(value: Any) -> int | None:
    """A token count as the service reported it, if it is one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _directives(block: str) -> set[str]:
    """The directives (``visual``, ``text`` ...) a script block gives itself."""
    return {m.group(1).lower() for line in block.splitlines() if (m := _DIRECTIVE.match(line))}


def _fill(scenes: list[Scene], title: str, duration: float) -> None:
    """Share the time a requested `duration` leaves over among the narrated
    scenes (never shorten one: the narrate stage fits scenes to their speech)."""
    narrated = [s for s in scenes if s.narration]
    short = duration - Storyboard(title=title or "Untitled", scenes=scenes).duration
    if short > 0 and narrated:
        extra = short / len(narrated)
        for s in narrated:
            s.duration = round(min(120.0, s.duration + extra), 3)
