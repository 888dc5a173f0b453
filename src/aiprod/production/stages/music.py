"""Stage 4, music: a bed of music for the whole production."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from aiprod.production.models import MusicMood
from aiprod.production.stages.base import Backend


class Composer(Backend, Protocol):
    def compose(self, mood: MusicMood, duration: float, seed: int, out: Path) -> None:
        """Write a 48 kHz stereo 16-bit WAV of exactly `duration` seconds to `out`."""
        ...
