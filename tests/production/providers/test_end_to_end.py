"""One production with every stage that has a provider on one: a local
OpenAI-compatible server writes the storyboard and speaks the narration, a
local Pexels-format server supplies a stock clip per scene.

The servers speak the documented wire formats over real HTTP; the speech
endpoint answers real speech (eSpeak NG reading the `input` it was sent), the
stock library real MP4 clips, and the chat endpoint counts tokens the way
OpenAI's rule of thumb does (characters / 4), so the estimate made before the
run is checked against what `cost.json` says was spent after it.
"""

from __future__ import annotations

import io
import json
import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from aiprod.production.backends.espeak import EspeakNarrator
from aiprod.production.models import ProductionRequest, Voice
from aiprod.production.pipeline import Pipeline
from aiprod.settings import Settings

from .conftest import FAKE_KEY
from .wire import LocalService, Recorded, Reply

TIPS = [  # about the 55 words the planner asks for 30 s: a model that follows its brief
    (
        "Keep a steady schedule",
        "Go to bed and wake up at the same time every day, even at the weekend, so "
        "your body clock learns when to rest.",
        ["alarm clock bedroom", "sunrise bedroom"],
    ),
    (
        "Dim the screens",
        "An hour before bed, put the phone away and dim the lamps; bright blue light "
        "tells your brain it is still day.",
        ["phone at night", "dim lamp"],
    ),
    (
        "Cool, dark and quiet",
        "Keep the bedroom cool, dark and quiet, around eighteen degrees, with heavy "
        "curtains and no ticking clock.",
        ["dark bedroom", "curtains night"],
    ),
]


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _chat(rec: Recorded) -> Reply:
    body = rec.json()
    content = json.dumps(
        {
            "title": "Three tips to sleep better tonight",
            "music_mood": "calm",
            "scenes": [
                {
                    "narration": n,
                    "visual": f"A calm shot: {h.lower()}.",
                    "on_screen_text": h,
                    "search_terms": terms,
                }
                for h, n, terms in TIPS
            ],
        }
    )
    # As OpenAI bills structured output: the messages and the schema.
    prompt = _tokens("".join(m["content"] for m in body["messages"]))
    prompt += _tokens(json.dumps(body["response_format"]))
    completion = _tokens(content)
    return Reply(
        200,
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        },
    )


def _speech(tmp: Path) -> Any:
    espeak = EspeakNarrator()

    def handler(rec: Recorded) -> Reply:
        body = rec.json()
        out = tmp / f"speech-{len(list(tmp.glob('speech-*')))}.wav"
        espeak.narrate(body["input"], Voice(name="en"), "en", out)
        return Reply(200, out.read_bytes(), {"content-type": "audio/wav"})

    return handler


def _clip(seed: int, seconds: float = 12.0, size: tuple[int, int] = (960, 540)) -> bytes:
    """A real H.264 clip: bars of the seed's colour sliding across."""
    buf = io.BytesIO()
    fps = 12
    w, h = size
    base = np.array([(60 + 70 * seed) % 256, 120, (200 - 50 * seed) % 256], dtype=np.uint8)
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        x = np.arange(w)
        for i in range(round(seconds * fps)):
            shade = ((np.sin((x + i * 12) / 40.0) + 1) * 60).astype(np.uint8)
            pixels = np.clip(base[None, None, :] + shade[None, :, None], 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.repeat(pixels, h, axis=0), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def _pexels(service: LocalService) -> None:
    clips = {i: _clip(i) for i in range(4)}
    for i, data in clips.items():
        service.route(
            "GET", f"/files/clip{i}.mp4", [Reply(200, data, {"content-type": "video/mp4"})]
        )

    def videos(rec: Recorded) -> Reply:
        return Reply(
            200,
            {
                "page": 1,
                "per_page": 4,
                "total_results": 4,
                "videos": [
                    {
                        "id": 1000 + i,
                        "width": 960,
                        "height": 540,
                        "duration": 12,
                        "url": f"https://www.pexels.com/video/clip-{1000 + i}/",
                        "image": f"{service.url}/files/clip{i}.jpg",
                        "user": {
                            "id": 7 + i,
                            "name": f"Videographer {i}",
                            "url": f"https://www.pexels.com/@v{i}",
                        },
                        "video_files": [
                            {
                                "id": 2000 + i,
                                "quality": "sd",
                                "file_type": "video/mp4",
                                "width": 960,
                                "height": 540,
                                "fps": 12,
                                "link": f"{service.url}/files/clip{i}.mp4",
                            }
                        ],
                        "video_pictures": [],
                    }
                    for i in range(4)
                ],
            },
        )

    service.route("GET", "/videos/search", videos)
    service.route("GET", "/v1/search", [Reply(200, {"page": 1, "per_page": 0, "photos": []})])


def test_three_tips_made_by_providers_from_plan_to_pictures(
    local_service: LocalService,
    provider_settings: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    local_service.route("POST", "/v1/chat/completions", _chat)
    local_service.route("POST", "/v1/audio/speech", _speech(tmp_path))
    _pexels(local_service)
    settings: Settings = provider_settings(
        openai_chat=local_service.url + "/v1",
        openai_speech=local_service.url + "/v1",
        pexels=local_service.url,
    )
    request = ProductionRequest(
        prompt="Three tips to sleep better tonight",
        duration=30,
        aspect="16:9",
        resolution="480p",
        fps=24,
        preset="quick_social",
        voice=Voice(name="coral"),
        backends={"plan": "openai-chat", "narrate": "openai-speech", "visuals": "pexels"},
    )
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        pipeline = Pipeline(request, out, settings=settings)
        estimate = pipeline.estimate.total
        result = pipeline.run()
    assert result is not None and result.qa.passed

    # The model's storyboard: three tip scenes whose narration is its text.
    content = [s for s in result.storyboard.scenes if s.kind == "content"]
    assert [s.narration for s in content] == [n for _, n, _ in TIPS]
    assert result.storyboard.written_by.startswith("openai-chat")
    # The speech endpoint read each scene (and nothing twice); a stock clip per scene.
    spoken = [r.json()["input"] for r in local_service.calls("POST", "/v1/audio/speech")]
    assert sorted(spoken) == sorted({s.narration for s in result.storyboard.scenes if s.narration})
    fetched = [r.path for r in local_service.requests if r.path.startswith("/files/")]
    assert len(fetched) == len(content) == len(set(fetched))  # de-duplicated across scenes

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backends"]["plan"]["backend"] == "openai-chat"
    assert manifest["backends"]["narrate"]["backend"] == "openai-speech"
    assert manifest["backends"]["visuals"]["backend"] == "pexels"
    sources = manifest["sources"]
    assert len(sources) == len(content)
    assert all("Pexels" in s["licence"] and s["author"].startswith("Videographer") for s in sources)
    assert "Videographer" in (out / "credits.txt").read_text()

    # What was spent agrees with the estimate made before the run (within 10 %).
    cost = json.loads((out / "cost.json").read_text())
    paid = {c["backend"] for c in cost["charges"]}
    assert paid == {"openai-chat", "openai-speech"}
    print(f"estimate before the run {estimate:.6f} USD, spent {cost['actual_total']:.6f} USD")
    assert cost["actual_total"] == pytest.approx(estimate, rel=0.10)

    # The key went to the services, and nowhere else.
    assert local_service.calls("POST", "/v1/chat/completions")[0].headers["authorization"] == (
        f"Bearer {FAKE_KEY}"
    )
    for path in out.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path
    assert FAKE_KEY not in caplog.text
