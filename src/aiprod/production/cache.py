"""Content-addressed stage cache.

A unit of stage work (one scene's narration, one scene's clip, the music bed...)
is keyed by a hash of everything that determines its output: the stage, the
backend's name and version, and the canonical JSON of its inputs (user media
enter by content hash, not by path).  Entries are folders written atomically
(temp folder, then rename) so a crash never leaves a half entry that a later
run would trust.  Entries expire after a TTL (168 h by default).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

_HASH_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _canonical(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def cache_key(stage: str, backend: str, version: str, inputs: Mapping[str, Any]) -> str:
    payload = {"stage": stage, "backend": backend, "version": version, "inputs": inputs}
    text = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class StageCache:
    def __init__(self, root: Path, ttl_hours: float = 168.0) -> None:
        self.root = root
        self.ttl = ttl_hours * 3600.0

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> Path | None:
        """The entry's folder if present and fresh; expired entries are removed."""
        d = self._dir(key)
        meta = d / "meta.json"
        try:
            created = float(json.loads(meta.read_text())["created"])
        except (OSError, ValueError, KeyError):
            return None
        if time.time() - created > self.ttl:
            shutil.rmtree(d, ignore_errors=True)
            return None
        return d

    def put(
        self,
        key: str,
        files: Sequence[Path],
        info: Mapping[str, Any] | None = None,
        names: Sequence[str] | None = None,
    ) -> Path:
        """Copy `files` into a new entry (flat, under `names` or their own names)
        and return its folder."""
        final = self._dir(key)
        tmp = self.root / "tmp" / f"{key}.{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            for f, name in zip(files, names or [f.name for f in files], strict=True):
                shutil.copy2(f, tmp / name)
            meta = {"created": time.time(), "info": _canonical(dict(info or {}))}
            (tmp / "meta.json").write_text(json.dumps(meta))
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(tmp, final)
            except OSError:
                # Another process stored the same key first; theirs is as good as ours.
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def prune(self) -> int:
        """Remove expired entries; returns how many were removed."""
        removed = 0
        if not self.root.exists():
            return 0
        for meta in self.root.glob("*/*/meta.json"):
            entry = meta.parent
            if self.get(entry.name) is None:
                removed += 1
        return removed
