"""Music bed speed: seconds to compose and write a bed with the built-in synth.

Prints, per duration, the median (with min and max) wall time of ``--runs``
runs of ``SynthComposer.compose`` (render plus WAV write) and the real-time
factor (seconds of music per second of wall time).  The five-minute figure was
a timed assertion in tests/production/test_music.py (< 15 s); the test now
only checks the length and level.

    .venv/bin/python bench/music.py                       # 30 s and 300 s, 5 runs
    .venv/bin/python bench/music.py --durations 300 --runs 9 --mood calm
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import cast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--durations", type=float, nargs="+", default=[30.0, 300.0])
    parser.add_argument("--mood", default="dramatic")
    args = parser.parse_args()

    from aiprod.production.backends.synth import SynthComposer
    from aiprod.production.models import MusicMood

    composer = SynthComposer()
    mood = cast(MusicMood, args.mood)
    with tempfile.TemporaryDirectory(prefix="aiprod-bench-") as tmp:
        out = Path(tmp) / "bed.wav"
        composer.compose(mood, 1.0, 0, out)  # warm-up: imports, caches
        for duration in args.durations:
            times = []
            for seed in range(args.runs):
                start = time.perf_counter()
                composer.compose(mood, duration, seed, out)
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            print(
                f"{duration:6.0f} s {mood}: median {median:6.3f} s   min {min(times):6.3f}   "
                f"max {max(times):6.3f}   {duration / median:5.0f}x real time   (n={args.runs})"
            )


if __name__ == "__main__":
    main()
