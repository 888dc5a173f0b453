"""Stage 4, music: a bed of music for the whole production.

Holds the Composer Protocol that backends implement, and the stage's body
(`run`, called by the Pipeline).  The bed depends only on the storyboard, so
the Pipeline may start composing it early (`compose_ahead`, on an `Ahead`
helper thread) while the visuals render; `run` then takes that result into the
stage cache instead of composing again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiprod.production.cache import cache_key, file_digest
from aiprod.production.media.bed import fit_bed
from aiprod.production.models import MusicMood, Storyboard
from aiprod.production.stages.base import Backend
from aiprod.production.stages.context import StageContext


class Composer(Backend, Protocol):
    def compose(self, mood: MusicMood, duration: float, seed: int, out: Path) -> None:
        """Write a 48 kHz stereo 16-bit WAV of exactly `duration` seconds to `out`."""
        ...


class Ahead:
    """One unit of work started early on a helper thread: the music bed, which
    depends only on the storyboard, is composed while the visuals render, whose
    renderer and encoder leave part of the second core idle (measured at 720p:
    ~0.8 s of a 1 s composition hidden).

    The helper's CPU time is read from its own thread clock, so that cost.json
    charges it to the music stage rather than to the stage it overlapped.
    """

    def __init__(self, work: Callable[[], None], path: Path) -> None:
        self.path = path
        self._work = work
        self._error: BaseException | None = None
        self._cpu = 0.0
        self._thread = threading.Thread(target=self._run, name="music-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # re-raised by `wait`, on the pipeline's thread
            self._error = exc
        finally:
            self._cpu = time.thread_time()

    def cpu_so_far(self) -> float:
        """CPU seconds the helper has used until now (running or finished)."""
        ident = self._thread.ident
        if self._thread.is_alive() and ident is not None:
            try:
                return time.clock_gettime(time.pthread_getcpuclockid(ident))
            except (AttributeError, OSError):  # no per-thread clocks, or it just ended
                pass
        self._thread.join()
        return self._cpu

    def wait(self) -> None:
        """Block until the work is done; raise what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error

    def discard(self) -> None:
        """Let the helper finish and remove whatever it left unused."""
        self._thread.join()
        self.path.unlink(missing_ok=True)


def mood(ctx: StageContext, storyboard: Storyboard) -> MusicMood | None:
    """The mood of the bed: the planner's pick, else the request's; None for no music."""
    if ctx.request.music is None:
        return None
    return storyboard.music_mood or ctx.request.music


def _inputs(ctx: StageContext, storyboard: Storyboard) -> dict[str, Any]:
    """What the music bed's cache key is made of."""
    inputs: dict[str, Any] = {
        "mood": mood(ctx, storyboard),
        "duration": storyboard.duration,
        "seed": storyboard.seed,
    }
    if ctx.request.music_file is not None:  # the user's song replaces the composer
        inputs["file"] = file_digest(ctx.request.music_file)
    return inputs


def compose_ahead(ctx: StageContext, storyboard: Storyboard) -> Ahead | None:
    """Start composing the music bed on a helper thread, unless there is no music
    or the cache already has it; `run` then takes the result."""
    picked = mood(ctx, storyboard)
    if picked is None or ctx.request.music_file is not None:
        return None
    composer: Composer = ctx.backend("music")
    key = cache_key("music", composer.name, composer.version, _inputs(ctx, storyboard))
    if ctx.cache is not None and ctx.cache.get(key) is not None:
        return None
    path = ctx.work / "tmp" / "music-ahead.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    duration, seed = storyboard.duration, storyboard.seed
    return Ahead(lambda: composer.compose(picked, duration, seed, path), path)


def load(ctx: StageContext) -> Path | None:
    """The music bed an earlier run made, or None for a production without music."""
    return ctx.work / "music.wav" if ctx.request.music or ctx.request.music_file else None


def run(ctx: StageContext, storyboard: Storyboard, ahead: Ahead | None = None) -> Path | None:
    """Make (or take from the cache, or from `ahead`) the music bed."""
    ctx.emit("music", "started", 0.0)
    if ctx.request.music is None and ctx.request.music_file is None:
        ctx.stats["music"] = {"hits": 0, "misses": 0}
        ctx.finish("music", units=0, cached=0)
        return None
    composer: Composer = ctx.backend("music")
    wav = ctx.work / "music.wav"
    picked, duration, seed = mood(ctx, storyboard), storyboard.duration, storyboard.seed
    song = ctx.request.music_file

    def make(tmp: Path) -> None:
        if song is not None:
            fit_bed(song, duration, tmp / wav.name)
            return
        assert picked is not None  # run() returned above when there is neither
        if ahead is None:
            composer.compose(picked, duration, seed, tmp / wav.name)
            return
        ahead.wait()
        os.replace(ahead.path, tmp / wav.name)

    try:
        hit = ctx.cached("music", composer, _inputs(ctx, storyboard), [wav], make)
    finally:
        if ahead is not None:
            ahead.discard()
    ctx.finish("music", units=1, cached=int(hit))
    return wav
