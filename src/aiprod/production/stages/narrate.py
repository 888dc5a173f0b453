"""Stage 2, narrate: scene text becomes speech with word timings."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from aiprod.production.models import Narration, Voice
from aiprod.production.stages.base import Backend


class VoiceInfo(BaseModel):
    name: str
    language: str
    gender: str = ""
    description: str = ""


class Narrator(Backend, Protocol):
    def narrate(self, text: str, voice: Voice, language: str, out: Path) -> Narration:
        """Write a mono 16-bit PCM WAV to `out`; return its length and word timings.

        Word timings are in seconds from the start of the file.  Empty text yields
        a short silent file with no words.
        """
        ...

    def voices(self) -> list[VoiceInfo]: ...
