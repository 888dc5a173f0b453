"""Producer commands: `aiprod make`, `aiprod voices`, `aiprod presets`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import TaskID
from rich.table import Table

from aiprod.cli.common import console, err, fail, stage_progress, validation_message
from aiprod.production.models import STAGES, ProductionRequest


def register(app: typer.Typer) -> None:
    """Add the producer commands to `app`."""
    app.command()(make)
    app.command()(voices)
    app.command()(presets)


def _parse_media(values: list[str]) -> list[dict[str, Any]]:
    media = []
    for v in values:
        scene, sep, path = v.partition("=")
        if not sep or not scene.strip().isdigit():
            raise fail(f"--media takes SCENE=PATH (e.g. 1=photo.jpg), got {v!r}")
        p = Path(path).expanduser()
        if not p.is_file():
            raise fail(f"media file not found: {p}")
        media.append({"scene": int(scene), "path": p.resolve()})
    return media


def _parse_stages(option: str, values: list[str]) -> dict[str, str]:
    """``STAGE=VALUE`` pairs, e.g. ``--backend plan=openai-chat``."""
    out: dict[str, str] = {}
    for v in values:
        stage, sep, value = v.partition("=")
        if not sep or stage not in STAGES or not value:
            raise fail(f"{option} takes STAGE=NAME with a stage of {', '.join(STAGES)}, got {v!r}")
        out[stage] = value
    return out


def make(
    prompt: Annotated[str | None, typer.Argument(help="What the video is about.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")] = Path("out"),
    script: Annotated[
        Path | None, typer.Option("--script", help="A script file instead of a prompt.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Title for the title card.")] = None,
    duration: Annotated[float | None, typer.Option(help="Target seconds (5–300).")] = None,
    aspect: Annotated[str, typer.Option(help="16:9, 9:16 or 1:1.")] = "16:9",
    resolution: Annotated[str, typer.Option(help="480p, 720p or 1080p.")] = "720p",
    fps: Annotated[int, typer.Option(help="24, 25 or 30.")] = 30,
    language: Annotated[str, typer.Option(help="Narration language.")] = "en",
    voice: Annotated[str | None, typer.Option(help="Voice name (see `aiprod voices`).")] = None,
    rate: Annotated[int, typer.Option(help="Speaking rate, words per minute.")] = 165,
    pitch: Annotated[int, typer.Option(help="Voice pitch 0–99.")] = 50,
    music: Annotated[
        str, typer.Option(help="Music mood, 'auto' (from the topic) or 'none'.")
    ] = "auto",
    palette: Annotated[str, typer.Option(help="Palette name or #hex,#hex,...")] = "ocean",
    motif: Annotated[
        str, typer.Option(help="gradient, particles, geometric, waves.")
    ] = "particles",
    subtitles: Annotated[bool, typer.Option(help="Burn in subtitles + sidecars.")] = True,
    highlight: Annotated[
        bool, typer.Option(help="Word-by-word subtitles: the spoken word in yellow.")
    ] = False,
    breath: Annotated[
        float, typer.Option(help="Seconds of silence after each scene's narration (0–3).")
    ] = 0.4,
    music_file: Annotated[
        Path | None, typer.Option("--music-file", help="Your own song as the music bed.")
    ] = None,
    preset: Annotated[str, typer.Option(help="See `aiprod presets`.")] = "brand_campaign",
    budget: Annotated[float | None, typer.Option(help="Spending cap in USD.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the planner and renderers.")] = 0,
    media: Annotated[
        list[str] | None, typer.Option("--media", help="SCENE=PATH, repeatable.")
    ] = None,
    estimate_only: Annotated[
        bool, typer.Option("--estimate", help="Print the cost estimate and stop.")
    ] = False,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            help="STAGE=NAME, repeatable: e.g. plan=openai-chat, narrate=elevenlabs, "
            "visuals=pexels (see docs/providers.md).",
        ),
    ] = None,
    fallback: Annotated[
        list[str] | None,
        typer.Option("--fallback", help="STAGE=builtin|fail: what a failed provider leads to."),
    ] = None,
) -> None:
    """Make a narrated video from a prompt or a script."""
    from aiprod.production.cost import BudgetExceeded

    if script is not None:
        if prompt is not None:
            raise fail("give a prompt or --script, not both")
        try:
            script_text: str | None = script.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"cannot read script {script}: {exc}") from None
    else:
        script_text = None
        if prompt is None:
            raise fail('give a prompt, e.g. aiprod make "how bees make honey", or --script FILE')
    if music_file is not None and not music_file.is_file():
        raise fail(f"cannot read music file {music_file}: no such file")
    raw: dict[str, Any] = {
        "prompt": prompt,
        "script": script_text,
        "title": title,
        "duration": duration,
        "aspect": aspect,
        "resolution": resolution,
        "fps": fps,
        "language": language,
        "voice": {"name": voice or language, "rate": rate, "pitch": pitch},
        "music": None if music.lower() == "none" else music,
        "style": {
            "palette": palette.split(",") if palette.startswith("#") else palette,
            "motif": motif,
        },
        "subtitles": {"enabled": subtitles, "highlight": highlight},
        "breath": breath,
        "music_file": music_file.resolve() if music_file is not None else None,
        "preset": preset,
        "budget": budget,
        "seed": seed,
        "media": _parse_media(media or []),
        "backends": _parse_stages("--backend", backend or []),
        "fallback": _parse_stages("--fallback", fallback or []),
    }
    try:
        request = ProductionRequest.model_validate(raw)
    except ValidationError as exc:
        raise fail(validation_message(exc)) from None

    from aiprod.production.pipeline import Cancelled, Pipeline, QAFailed
    from aiprod.production.providers.client import ProviderError

    try:
        pipeline = Pipeline(request, output)
    except BudgetExceeded as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    est = pipeline.estimate
    if estimate_only:
        _print_estimate(est.model_dump(mode="json"), pipeline.fast_track)
        return
    for note in est.downgrades:
        console.print(f"[yellow]budget:[/] downgraded {note}")
    if pipeline.fast_track:
        console.print("[cyan]fast track:[/] simple request, draft encode, no review")

    with stage_progress() as bar:
        tasks: dict[str, TaskID] = {s: bar.add_task(s, total=1.0, note="", eta="–") for s in STAGES}

        def on_progress(ev: Any) -> None:
            if ev.status == "fallback":
                d = ev.detail
                bar.console.print(
                    f"[yellow]fallback:[/] {d['provider']} {d['call']} failed ({d['reason']}); "
                    f"{ev.stage} made by {d['backend']}"
                )
                return
            eta = f"{ev.eta:.0f}s" if ev.eta is not None else "–"
            note = f"{ev.cached}/{ev.units} cached" if ev.status == "completed" and ev.units else ""
            for t in tasks.values():
                bar.update(t, eta=eta)
            bar.update(tasks[ev.stage], completed=ev.fraction, note=note)

        pipeline.on_progress = on_progress
        try:
            result = pipeline.run()
            assert result is not None  # no review gate on the command line
        except QAFailed as exc:
            bar.stop()
            _print_qa(exc.report.model_dump(mode="json"))
            raise fail(f"{exc} (report: {output / 'qa.json'})", 1) from None
        except Cancelled:
            raise fail("cancelled", 130) from None
        except (ValueError, ProviderError) as exc:
            raise fail(str(exc)) from None
    console.print(
        f"[bold green]done:[/] {result.video}  ({result.storyboard.duration:.1f}s, "
        f"{len(result.storyboard.scenes)} scenes, {pipeline.spec.width}x"
        f"{pipeline.spec.height}@{pipeline.spec.fps})"
    )
    console.print(f"       subtitles, poster, storyboard, qa, cost, manifest in {output}/")
    for note in result.storyboard.notes:  # e.g. the template planner says what it is
        console.print(f"[yellow]note:[/] {note}")


def _print_estimate(est: dict[str, Any], fast: bool) -> None:
    table = Table(title="Cost estimate")
    for col in ("stage", "backend", "units", "unit", "cost (USD)", "seconds"):
        table.add_column(col)
    for s in est["stages"]:
        table.add_row(
            s["stage"],
            s["backend"],
            f"{s['units']:.3f}",
            s["unit"],
            f"{s['cost']:.6f}",
            f"{s['seconds']:.1f}",
        )
    console.print(table)
    console.print(f"total ${est['total']:.6f}, about {est['seconds']:.0f}s; fast track: {fast}")
    for note in est.get("downgrades", []):
        console.print(f"[yellow]downgraded:[/] {note}")


def _print_qa(report: dict[str, Any]) -> None:
    table = Table(title="Quality checks")
    for col in ("check", "result", "measured", "expected"):
        table.add_column(col)
    for c in report["checks"]:
        mark = "[green]pass" if c["passed"] else ("[red]FAIL" if c["blocking"] else "[yellow]warn")
        table.add_row(c["name"], mark, c["measured"], c["expected"])
    err.print(table)


def voices(
    language: Annotated[str | None, typer.Option(help="Only voices for this language.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the narrator voices of every engine (neural first, then eSpeak NG)."""
    from aiprod.production import backends

    items = backends.get("narrate").voices()
    if language:
        wanted = language.lower()
        items = [
            v
            for v in items
            if v.language.lower() == wanted or v.language.lower().startswith(wanted + "-")
        ]
    if as_json:
        console.print_json(json.dumps([v.model_dump() for v in items]))
        return
    table = Table(title=f"{len(items)} voices")
    for col in ("name", "language", "gender", "engine", "Hz", "licence"):
        table.add_column(col)
    for v in items:
        table.add_row(v.name, v.language, v.gender, v.engine, str(v.sample_rate or ""), v.licence)
    console.print(table)


def presets() -> None:
    """List the presets with their caps and quality tiers."""
    from aiprod.production.presets import PRESETS

    table = Table(title="Presets")
    for col in ("name", "default s", "max s", "max scenes", "quality", "resolutions", "about"):
        table.add_column(col)
    for p in PRESETS.values():
        table.add_row(
            p.name,
            f"{p.default_duration:g}",
            f"{p.max_duration:g}",
            str(p.max_scenes),
            p.quality,
            ", ".join(p.resolutions),
            p.description,
        )
    console.print(table)
