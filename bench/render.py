"""Render benchmark: the whole pipeline against an encode-only baseline.

For a 30 s production at 720p30 and 1080p30 it prints wall time, real-time
factor (seconds of video per second of wall time), peak RSS, and the ratio of
the pipeline's wall time to a baseline that only encodes the same number of
frames with the same codec settings (libx264, the production's preset and
CRF), measured in the same run, on frames taken from the pipeline's own output
(one second of it, decoded before the clock starts, played back and forth) so
both encode the same kind of picture and motion.  Pipeline and baseline runs
alternate and the ratio is the median of the pairs' ratios, so that a slow spell
of a shared machine slows both sides of a pair.
Every measurement runs in a fresh subprocess (so peak RSS is that run's own)
with an empty stage cache; the figures are medians of ``--runs`` runs.  Both
children import their code before the clock starts, as a long-lived worker has:
the pipeline's one-off import and backend start-up time (SciPy, eSpeak NG) is
printed in its own column rather than hidden in, or added to, the ratio.

    .venv/bin/python bench/render.py            # 3 runs each
    .venv/bin/python bench/render.py --runs 5 --resolutions 1080p
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
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


def child_pipeline(resolution: str, duration: float, keep: Path) -> dict[str, float]:
    t_import = time.perf_counter()
    from aiprod.production import backends
    from aiprod.production.models import STAGES, ProductionRequest
    from aiprod.production.pipeline import Pipeline
    from aiprod.settings import Settings

    for stage in STAGES:  # load every default backend, as a running worker has
        backends.get(stage)
    imports = time.perf_counter() - t_import

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")  # empty cache: full work
        request = ProductionRequest.model_validate(_request(resolution, duration))
        t0 = time.perf_counter()
        pipeline = Pipeline(request, Path(tmp) / "out", settings=settings)
        result = pipeline.run()
        assert result is not None
        wall = time.perf_counter() - t0
        frames = pipeline.spec.frames(result.storyboard.duration)
        shutil.copy2(result.video, keep)  # the baseline encodes frames of it
        return {
            "wall": wall,
            "video_seconds": result.storyboard.duration,
            "frames": frames,
            "width": pipeline.spec.width,
            "height": pipeline.spec.height,
            "imports": imports,
        }


def child_baseline(resolution: str, frames: int, source: Path) -> dict[str, float]:
    import av
    import numpy as np

    from aiprod.production.cost import requested_spec
    from aiprod.production.media.video import VideoWriter, final_options
    from aiprod.production.models import ProductionRequest

    spec = requested_spec(ProductionRequest.model_validate(_request(resolution, 30)))
    # The frames to encode are decoded before the clock starts: one second of
    # the pipeline's own output from its middle, played forwards and backwards
    # (no jump cuts), so the encoder sees the same kind of picture and motion
    # without rendering anything.
    first = frames // 2
    with av.open(str(source)) as container:
        window = [
            np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8)
            for i, f in enumerate(container.decode(video=0))
            if first <= i < first + spec.fps
        ]
    pool = window + window[-2:0:-1]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with VideoWriter(
            Path(tmp) / "b.mp4",
            spec.width,
            spec.height,
            spec.fps,
            final_options(spec),
            faststart=True,
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
        kind, resolution, value, path = args.child
        if kind == "pipeline":
            data = child_pipeline(resolution, float(value), Path(path))
        else:
            data = child_baseline(resolution, int(value), Path(path))
        data["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(data))
        return

    print(f"render benchmark: {args.duration:g}s production, median of {args.runs} runs")
    header = (
        f"{'res':>6} {'frames':>6} {'pipeline s':>10} {'baseline s':>10} {'ratio':>6} "
        f"{'RTF':>6} {'pipe RSS MB':>11} {'base RSS MB':>11} {'imports s':>9}"
    )
    print(header)
    keep = Path(tempfile.mkdtemp()) / "pipeline.mp4"
    for res in args.resolutions:
        # Pipeline and baseline runs alternate, and the ratio is the median of the
        # ratios of each pair, so a slow spell of a shared machine weighs on both
        # sides alike instead of on whichever happened to run through it.
        pipe: list[dict[str, float]] = []
        base: list[dict[str, float]] = []
        for _ in range(args.runs):
            pipe.append(_run_child("pipeline", res, str(args.duration), str(keep)))
            base.append(_run_child("baseline", res, str(int(pipe[0]["frames"])), str(keep)))
        frames = int(pipe[0]["frames"])
        p_wall = statistics.median(r["wall"] for r in pipe)
        b_wall = statistics.median(r["wall"] for r in base)
        ratio = statistics.median(p["wall"] / b["wall"] for p, b in zip(pipe, base, strict=True))
        video_s = pipe[0]["video_seconds"]
        print(
            f"{res:>6} {frames:>6} {p_wall:>10.2f} {b_wall:>10.2f} {ratio:>6.2f} "
            f"{video_s / p_wall:>6.2f} {statistics.median(r['peak_rss_mb'] for r in pipe):>11.0f} "
            f"{statistics.median(r['peak_rss_mb'] for r in base):>11.0f} "
            f"{statistics.median(r['imports'] for r in pipe):>9.2f}"
        )
    shutil.rmtree(keep.parent, ignore_errors=True)
    print(
        "ratio = median over alternating pairs of pipeline wall / encode-only wall "
        "(target ≤ 1.5); RTF = video s / wall s"
    )
    print("baseline RSS includes its decoded source frames (one second) held in memory")
    print("imports = the pipeline process's one-off start-up, before its clock starts")


if __name__ == "__main__":
    main()
