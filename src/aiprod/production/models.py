"""The engine's data contract: what a user asks for and what the planner decides.

Everything here is a pydantic model so that the CLI, the HTTP API and the job
worker validate input the same way and store it as JSON.  Models are strict
(`extra="forbid"`) so a typo in a field name is an error, not a silent default.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AspectRatio = Literal["16:9", "9:16", "1:1"]
Resolution = Literal["480p", "720p", "1080p"]
Fps = Literal[24, 25, 30]
MusicMood = Literal["uplifting", "calm", "dramatic", "corporate", "playful", "dark"]
CameraMove = Literal["static", "pan_left", "pan_right", "zoom_in", "zoom_out"]
Transition = Literal["cut", "crossfade", "slide"]
PresetName = Literal["quick_social", "brand_campaign", "premium_spot"]
Palette = Literal["sunset", "ocean", "forest", "mono", "neon", "pastel", "corporate"]
VisualMotif = Literal["gradient", "particles", "geometric", "waves"]
QualityTier = Literal["draft", "standard", "premium"]

MUSIC_MOODS: tuple[str, ...] = ("uplifting", "calm", "dramatic", "corporate", "playful", "dark")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")

MAX_SCENES = 100  # scenes of one storyboard (presets cap lower)
MAX_BUDGET = 1_000_000.0  # USD: a request's budget cap is bounded like every number


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


VOICE_NAME = r"^\.?[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*\.?$"
"""Letters, digits and ``_+.-``, never two dots in a row: a voice name can name
no path (eSpeak looks voices and variants up as files of its data folder).
Written without look-arounds, and unambiguous, so every regex engine checks it
in linear time."""


class Voice(_Strict):
    """A narrator voice: a name of `GET /v1/voices` (the neural `hibari-heart`, an
    eSpeak NG voice, or a remote backend's); `en` means the language's default.

    The API also checks it against the narrator's installed voices
    (``GET /v1/voices``); the pattern holds wherever no such check runs (CLI)."""

    name: str = Field(
        "en",
        min_length=1,
        max_length=64,
        pattern=VOICE_NAME,
        description="A voice of `GET /v1/voices`, optionally with a variant: `en-US`, `en+f3`.",
    )
    rate: int = Field(165, ge=80, le=400, description="Speaking rate in words per minute.")
    pitch: int = Field(50, ge=0, le=99, description="Base pitch, 0–99 (eSpeak scale).")


class SubtitleStyle(_Strict):
    enabled: bool = True
    burn_in: bool = True
    position: Literal["bottom", "top"] = "bottom"
    size: float = Field(1.0, ge=0.5, le=2.0, allow_inf_nan=False, description="Relative font size.")
    color: str = Field("#ffffff", description="Text colour as #rrggbb.")
    box: bool = Field(True, description="Draw a translucent box behind the text.")
    highlight: bool = Field(
        False,
        description="Word-by-word: the word being spoken is drawn in `highlight_color` "
        "(the look of vertical social video). Burned-in subtitles only.",
    )
    highlight_color: str = Field("#ffd400", description="Colour of the spoken word, #rrggbb.")

    @field_validator("color", "highlight_color")
    @classmethod
    def _hex(cls, v: str) -> str:
        if not _HEX.match(v):
            raise ValueError("color must be #rrggbb")
        return v.lower()


class VisualStyle(_Strict):
    palette: Palette | list[str] = "ocean"
    motif: VisualMotif = "particles"
    font_scale: float = Field(1.0, ge=0.5, le=2.0, allow_inf_nan=False)

    @field_validator("palette")
    @classmethod
    def _colors(cls, v: Palette | list[str]) -> Palette | list[str]:
        if isinstance(v, list):
            if not 2 <= len(v) <= 6:
                raise ValueError("a custom palette has 2 to 6 colours")
            bad = [c for c in v if not _HEX.match(c)]
            if bad:
                raise ValueError(f"palette colours must be #rrggbb, got {bad}")
            return [c.lower() for c in v]
        return v


class UserMedia(_Strict):
    """A picture or clip the user supplies for one scene (image → Ken Burns, video →
    trimmed/looped).

    From the CLI it is a local file (`path`).  Over the API it is an upload of
    `POST /v1/media` (`media_id`); the job worker fetches it into the job's
    scratch folder and fills in `path` before the engine sees it, so the engine
    only ever reads ``.path``."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    scene: int = Field(
        ge=0, le=MAX_SCENES - 1, description="Zero-based index of the scene that shows it."
    )
    file: Path | None = Field(
        None,
        alias="path",
        description="A local file (CLI only: the API refuses server paths; give `media_id`).",
    )
    media_id: uuid.UUID | None = Field(
        None, description="An upload of `POST /v1/media` (image or video) of the caller's."
    )
    license: str = Field("user-supplied", max_length=200)

    @property
    def path(self) -> Path:
        """The local file; an upload not fetched yet has none (ValueError)."""
        if self.file is None:
            raise ValueError(f"media {self.media_id} has not been fetched to a local file")
        return self.file

    @property
    def kind(self) -> Literal["image", "video"]:
        return "video" if self.path.suffix.lower() in VIDEO_SUFFIXES else "image"

    @field_validator("file")
    @classmethod
    def _suffix(cls, v: Path | None) -> Path | None:
        if v is None:
            return v
        suffix = v.suffix.lower()
        if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            raise ValueError(
                f"unsupported media type {suffix or '(none)'}; use one of "
                + ", ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
            )
        return v

    @model_validator(mode="after")
    def _source(self) -> UserMedia:
        if self.file is None and self.media_id is None:
            raise ValueError("give 'path' (a local file) or 'media_id' (an upload)")
        return self


# Text fields are stripped and must keep something (JSON Schema patterns search).
_NOT_BLANK: dict[str, Any] = {"pattern": r"\S"}


def _registered_backends(schema: dict[str, Any]) -> None:
    """The schema names the stages and each stage's backends as registered when
    the OpenAPI document is built (plugins register theirs before that)."""
    from aiprod.production import backends

    schema["properties"] = {
        stage: {"type": "string", "enum": backends.names(stage)} for stage in STAGES
    }
    schema["additionalProperties"] = False


def _auto_mood_schema(schema: dict[str, Any]) -> None:
    """`music` also takes ``"auto"``, its default (resolved before validation)."""
    for option in schema.get("anyOf", []):
        if "enum" in option:
            option["enum"] = [*option["enum"], "auto"]
    schema["default"] = "auto"


class ProductionRequest(_Strict):
    """What a user asks for.  Exactly one of `prompt` and `script`."""

    prompt: str | None = Field(None, min_length=3, max_length=4000, json_schema_extra=_NOT_BLANK)
    script: str | None = Field(None, min_length=3, max_length=50_000, json_schema_extra=_NOT_BLANK)
    title: str | None = Field(None, max_length=120, json_schema_extra=_NOT_BLANK)
    language: str = Field("en", min_length=2, max_length=16, pattern=r"^[A-Za-z\-]+$")
    duration: float | None = Field(
        None,
        ge=5,
        le=300,
        allow_inf_nan=False,
        description="Target duration in seconds (default from the preset).",
    )
    aspect: AspectRatio = "16:9"
    resolution: Resolution = "720p"
    fps: Fps = 30
    voice: Voice = Field(default_factory=Voice)
    breath: float = Field(
        0.4,
        ge=0.0,
        le=3.0,
        allow_inf_nan=False,
        description="Silence in seconds after each scene's narration, before the next voice; "
        "scenes last as long as their speech plus this.",
    )
    music: MusicMood | None = Field(
        None,
        description="Music mood; `auto` (the default) picks one from the topic's words "
        "(sleep → calm, business → corporate, kids → playful …) and the stored request "
        "shows the pick; null for no music.",
        json_schema_extra=_auto_mood_schema,
    )
    music_media_id: uuid.UUID | None = Field(
        None,
        description="An audio upload of `POST /v1/media` to use as the music bed instead of "
        "the synthesised `music` (looped or trimmed to the video, faded out).",
    )
    music_file: Path | None = Field(
        None,
        description="A local audio file for the music bed (CLI only; the API refuses server "
        "paths: give `music_media_id`).",
    )
    style: VisualStyle = Field(default_factory=VisualStyle)
    subtitles: SubtitleStyle = Field(default_factory=SubtitleStyle)
    media: list[UserMedia] = Field(default_factory=list, max_length=50)
    preset: PresetName = "brand_campaign"
    budget: float | None = Field(
        None, gt=0, le=MAX_BUDGET, allow_inf_nan=False, description="Spending cap in USD."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    review: bool = False
    backends: dict[str, str] = Field(
        default_factory=dict,
        description="Backend per stage, e.g. {'narrate': 'espeak'}.",
        json_schema_extra=_registered_backends,
    )

    fallback: dict[str, Literal["fail", "builtin"]] = Field(
        default_factory=dict,
        description="Per stage, what a failed AI provider leads to: `fail` (the production "
        "fails, naming the provider, the call and why) or `builtin` (the built-in backend "
        "makes the stage; the manifest and a `stage.fallback` event say so). Unset: the "
        "server's `AIPROD_PROVIDER_FALLBACK`, by default `fail`.",
    )

    @model_validator(mode="before")
    @classmethod
    def _auto_mood(cls, data: Any) -> Any:
        """``music`` absent or ``"auto"``: the mood the topic's words suggest."""
        if isinstance(data, dict) and data.get("music", "auto") == "auto":
            from aiprod.production.moods import mood_for

            words = [data.get(k) for k in ("title", "prompt", "script")]
            data = {**data, "music": mood_for(" ".join(w for w in words if isinstance(w, str)))}
        return data

    @field_validator("prompt", "script", "title")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        if not v:
            raise ValueError("must not be blank")
        return v

    @field_validator("backends", "fallback")
    @classmethod
    def _stages(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = set(v) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stage(s) {sorted(unknown)}; stages are {list(STAGES)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> ProductionRequest:
        from aiprod.production.presets import PRESETS

        if (self.prompt is None) == (self.script is None):
            raise ValueError("give exactly one of 'prompt' or 'script'")
        preset = PRESETS[self.preset]
        if self.duration is not None and self.duration > preset.max_duration:
            raise ValueError(
                f"duration {self.duration:g}s exceeds the {self.preset} preset's cap of "
                f"{preset.max_duration:g}s"
            )
        if self.resolution not in preset.resolutions:
            raise ValueError(
                f"resolution {self.resolution} is not offered by the {self.preset} preset "
                f"(allowed: {', '.join(preset.resolutions)})"
            )
        seen: set[int] = set()
        for m in self.media:
            if m.scene in seen:
                raise ValueError(f"scene {m.scene} has more than one media file")
            seen.add(m.scene)
        return self

    @property
    def target_duration(self) -> float:
        from aiprod.production.presets import PRESETS

        return self.duration if self.duration is not None else PRESETS[self.preset].default_duration


STAGES: tuple[str, ...] = ("plan", "narrate", "visuals", "music", "montage", "qa")


class Scene(_Strict):
    index: int = Field(ge=0, le=MAX_SCENES - 1)
    narration: str = Field("", max_length=2000)
    visual: str = Field("", max_length=1000, description="What the scene shows.")
    on_screen_text: str = Field("", max_length=200)
    search_terms: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        default_factory=list,
        max_length=5,
        description="Words a stock library is searched by for this scene (stock visuals).",
    )
    duration: float = Field(gt=0.5, le=120, allow_inf_nan=False)
    camera: CameraMove = "static"
    transition: Transition = Field("crossfade", description="Transition into the next scene.")
    transition_duration: float = Field(0.5, ge=0, le=2.0, allow_inf_nan=False)
    kind: Literal["title", "content", "end"] = "content"
    media: UserMedia | None = None
    voice: Voice | None = Field(None, description="Overrides the production's voice here.")
    style: VisualStyle | None = Field(None, description="Overrides the production's style here.")

    @model_validator(mode="after")
    def _fits(self) -> Scene:
        if self.transition != "cut" and self.transition_duration * 2 > self.duration:
            raise ValueError(
                f"scene {self.index}: transition of {self.transition_duration:g}s does not fit "
                f"in a {self.duration:g}s scene"
            )
        return self


class Storyboard(_Strict):
    title: str = Field(max_length=120)
    language: str = Field("en", min_length=2, max_length=16, pattern=r"^[A-Za-z\-]+$")
    scenes: Annotated[list[Scene], Field(min_length=1, max_length=MAX_SCENES)]
    seed: int = Field(0, ge=0, le=2**31 - 1)
    written_by: str = Field(
        "",
        max_length=64,
        description="Who wrote the narration: `template` (the built-in planner, from the "
        "prompt's own words), `script` (the user's script), `user-edit`, or an AI provider.",
    )
    music_mood: MusicMood | None = Field(
        None,
        description="The planner's pick of a music mood, used instead of the request's "
        "automatic one (a request without music stays without).",
    )
    notes: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list,
        max_length=20,
        description="What the planner wants the user to know before rendering.",
    )

    @model_validator(mode="after")
    def _indices(self) -> Storyboard:
        for i, s in enumerate(self.scenes):
            if s.index != i:
                raise ValueError(f"scene indices must be 0..n-1 in order; got {s.index} at {i}")
        return self

    def overlap_after(self, i: int) -> float:
        """Seconds scene i overlaps the next one (0 for a cut or the last scene)."""
        if i >= len(self.scenes) - 1 or self.scenes[i].transition == "cut":
            return 0.0
        return self.scenes[i].transition_duration

    def starts(self) -> list[float]:
        """Start time of each scene on the final timeline (transitions overlap scenes)."""
        t, out = 0.0, []
        for i, s in enumerate(self.scenes):
            out.append(t)
            t += s.duration - self.overlap_after(i)
        return out

    @property
    def duration(self) -> float:
        starts = self.starts()
        return starts[-1] + self.scenes[-1].duration


class RenderSpec(_Strict):
    """Concrete output format derived from a request (and maybe downgraded by budget)."""

    width: int = Field(ge=64, le=3840)
    height: int = Field(ge=64, le=3840)
    fps: Fps
    quality: QualityTier = "standard"

    @property
    def x264_preset(self) -> str:
        return {"draft": "veryfast", "standard": "medium", "premium": "slow"}[self.quality]

    @property
    def crf(self) -> int:
        return {"draft": 23, "standard": 20, "premium": 18}[self.quality]

    def frames(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))


_HEIGHTS = {"480p": 480, "720p": 720, "1080p": 1080}


def render_spec(
    aspect: AspectRatio, resolution: Resolution, fps: Fps, quality: QualityTier
) -> RenderSpec:
    """Size for an aspect and a resolution class: the short side is the class's height."""
    short = _HEIGHTS[resolution]
    long_side = (short * 16 // 9 + 1) // 2 * 2
    if aspect == "16:9":
        w, h = long_side, short
    elif aspect == "9:16":
        w, h = short, long_side
    else:
        w = h = short
    return RenderSpec(width=w, height=h, fps=fps, quality=quality)


class WordTiming(_Strict):
    text: str
    start: float
    end: float


class Narration(_Strict):
    """A narrated scene: a mono WAV and the timing of each word in it."""

    path: Path
    sample_rate: int
    duration: float
    words: list[WordTiming] = Field(default_factory=list)


class SubtitleCue(_Strict):
    start: float
    end: float
    text: str
    words: list[WordTiming] = Field(
        default_factory=list,
        description="The cue's words on the final timeline (word-by-word highlight); "
        "empty for cues read back from SRT/WebVTT.",
    )


class QACheck(_Strict):
    name: str
    passed: bool
    blocking: bool = True
    measured: str = ""
    expected: str = ""


class QAReport(_Strict):
    passed: bool
    checks: list[QACheck]

    @property
    def failures(self) -> list[QACheck]:
        return [c for c in self.checks if not c.passed and c.blocking]
