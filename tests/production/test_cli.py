"""`aiprod make / voices / presets`: real renders, clear errors, non-zero exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aiprod.cli import app
from aiprod.production.media.probe import probe

runner = CliRunner()


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPROD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no wrapping mid-name
    from aiprod.settings import get_settings

    get_settings.cache_clear()


def make(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["make", *args])
    return result.exit_code, result.output


def test_make_from_a_script_file_renders_a_playable_video(tmp_path: Path) -> None:
    script = tmp_path / "s.txt"
    script.write_text("Bees leave the hive.\n\nThey come back with nectar.", encoding="utf-8")
    out = tmp_path / "out"
    code, output = make(
        "--script",
        str(script),
        "-o",
        str(out),
        "--resolution",
        "480p",
        "--fps",
        "24",
        "--preset",
        "quick_social",
        "--music",
        "none",
        "--aspect",
        "9:16",
    )
    assert code == 0, output
    assert "done:" in output
    info = probe(out / "video.mp4")
    assert (info.width, info.height) == (480, 854)
    assert info.has_audio
    for name in ("storyboard.json", "qa.json", "cost.json", "manifest.json", "subtitles.vtt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "qa.json").read_text())["passed"] is True


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "give a prompt"),
        (("bees", "--script", "x.txt"), "not both"),
        (("bees", "--duration", "2"), "duration: Input should be greater than or equal to 5"),
        (("bees", "--aspect", "4:3"), "aspect"),
        (("bees", "--resolution", "8k"), "resolution"),
        (("bees", "--music", "polka"), "music"),
        (("bees", "--palette", "#12345"), "palette"),
        (("bees", "--preset", "quick_social", "--duration", "90"), "cap of 60s"),
        (("bees", "--media", "nope"), "SCENE=PATH"),
        (("bees", "--media", "1=/no/such/file.png"), "media file not found"),
        (("bees", "--budget", "0.0000000001"), "above the budget"),
        (
            ("bees", "--voice", "zz-nonexistent", "--duration", "5", "--resolution", "480p"),
            "zz-nonexistent",
        ),
    ],
)
def test_bad_input_exits_non_zero_with_a_clear_message(
    args: tuple[str, ...], needle: str, tmp_path: Path
) -> None:
    code, output = make(*args, "-o", str(tmp_path / "o"))
    assert code != 0
    assert needle in output
    assert "Traceback" not in output
    assert not (tmp_path / "o" / "video.mp4").exists()


def test_unreadable_script_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bin.txt"
    bad.write_bytes(b"\xff\xfe\x00garbage\xff")
    code, output = make("--script", str(bad))
    assert code == 2
    assert "cannot read script" in output


def test_estimate_only_prints_every_stage_and_renders_nothing(tmp_path: Path) -> None:
    code, output = make("bees and honey", "--estimate", "-o", str(tmp_path / "o"))
    assert code == 0, output
    for stage in ("plan", "narrate", "visuals", "music", "montage", "qa"):
        assert stage in output
    assert "total $" in output
    assert not (tmp_path / "o").exists()


def test_voices_and_presets() -> None:
    voices = runner.invoke(app, ["voices", "--json", "--language", "fr"])
    assert voices.exit_code == 0
    listed = json.loads(voices.output)
    assert listed and all(v["language"].startswith("fr") for v in listed)
    presets = runner.invoke(app, ["presets"])
    assert presets.exit_code == 0
    for name in ("quick_social", "brand_campaign", "premium_spot"):
        assert name in presets.output


def test_pacing_subtitle_and_music_options_are_checked(tmp_path: Path) -> None:
    code, output = make("bees and honey", "--breath", "5", "--estimate")
    assert code == 2 and "breath" in output
    code, output = make("bees and honey", "--music-file", str(tmp_path / "none.wav"))
    assert code == 2 and "cannot read music file" in output
    code, output = make("bees and honey", "--highlight", "--breath", "0.2", "--estimate")
    assert code == 0, output
