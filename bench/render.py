"""Render benchmark: the whole pipeline against an encode-only baseline.

For a 30 s production at 720p30 and 1080p30 it prints wall time, real-time
factor (seconds of video per second of wall time), peak RSS, and the ratio of
the pipeline's wall time to a baseline that only encodes the same number of
frames with the same codec settings (libx264, the production's preset and
CRF), measured in the same run.  Every measurement runs in a fresh
subprocess (so peak RSS is that run's own) with an empty stage cache; the
figures are medians of ``--runs`` runs.

    .venv/bin/python bench/render.py            # 3 runs each
    .venv/bin/python bench/render.py --runs 5 --resolutions 1080p
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "A short film about how honeybees turn flowers into honey"


def _request(resolution: str, duration: float) -> dict[str, object]:
    return {
        "prompt": PROMPT,
        "duration": duration,
        "resolution": resolution,
        "fps": 30,
        "preset": "brand_campaign",
    }


def child_pipeline(resolution: str, duration: float) -> dict[str, float]:
    from aiprod.production.models import ProductionRequest
    from aiprod.production.pipeline import Pipeline
    from aiprod.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")  # empty cache: full work
        request = ProductionRequest.model_validate(_request(resolution, duration))
        t0 = time.perf_counter()
        pipeline = Pipeline(request, Path(tmp) / "out", settings=settings)
        result = pipeline.run()
        assert result is not None
        wall = time.perf_counter() - t0
        frames = pipeline.spec.frames(result.storyboard.duration)
        return {
            "wall": wall,
            "video_seconds": result.storyboard.duration,
            "frames": frames,
            "width": pipeline.spec.width,
            "height": pipeline.spec.height,
        }


def child_baseline(resolution: str, frames: int) -> dict[str, float]:
    import numpy as np

    from aiprod.production.cost import requested_spec
    from aiprod.production.media.video import VideoWriter, final_options
    from aiprod.production.models import ProductionRequest

    spec = requested_spec(ProductionRequest.model_validate(_request(resolution, 30)))
    # Frames are made before the clock starts: a moving gradient with some
    # texture, so the encoder has real work but nothing is rendered in the loop.
    h, w = spec.height, spec.width
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(0)
    grain = rng.integers(0, 12, (h, w), dtype=np.uint8)
    pool = []
    for i in range(30):
        f = np.empty((h, w, 3), np.uint8)
        f[..., 0] = (x // 4 + i * 6) % 256
        f[..., 1] = (y // 3 + i * 3) % 256
        f[..., 2] = 128 + grain
        pool.append(f)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with VideoWriter(
            Path(tmp) / "b.mp4", w, h, spec.fps, final_options(spec), faststart=True
        ) as writer:
            for i in range(frames):
                writer.write(pool[i % len(pool)])
        wall = time.perf_counter() - t0
    return {"wall": wall, "frames": frames}


def _run_child(kind: str, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--resolutions", nargs="+", default=["720p", "1080p"])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, resolution, value = args.child
        if kind == "pipeline":
            data = child_pipeline(resolution, float(value))
        else:
            data = child_baseline(resolution, int(value))
        data["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(data))
        return

    print(f"render benchmark: {args.duration:g}s production, median of {args.runs} runs")
    header = (
        f"{'res':>6} {'frames':>6} {'pipeline s':>10} {'baseline s':>10} {'ratio':>6} "
        f"{'RTF':>6} {'pipe RSS MB':>11} {'base RSS MB':>11}"
    )
    print(header)
    for res in args.resolutions:
        pipe = [_run_child("pipeline", res, str(args.duration)) for _ in range(args.runs)]
        frames = int(pipe[0]["frames"])
        base = [_run_child("baseline", res, str(frames)) for _ in range(args.runs)]
        p_wall = statistics.median(r["wall"] for r in pipe)
        b_wall = statistics.median(r["wall"] for r in base)
        video_s = pipe[0]["video_seconds"]
        print(
            f"{res:>6} {frames:>6} {p_wall:>10.2f} {b_wall:>10.2f} {p_wall / b_wall:>6.2f} "
            f"{video_s / p_wall:>6.2f} {statistics.median(r['peak_rss_mb'] for r in pipe):>11.0f} "
            f"{statistics.median(r['peak_rss_mb'] for r in base):>11.0f}"
        )
    print("ratio = pipeline wall / encode-only wall (target ≤ 1.5); RTF = video s / wall s")


if __name__ == "__main__":
    main()
