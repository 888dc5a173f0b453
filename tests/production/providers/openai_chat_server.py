"""Replies of an OpenAI-compatible Chat Completions service (``POST /v1/chat/completions``),
for scripting a ``LocalService``: a completion whose message holds `content`,
its ``finish_reason`` and ``usage``, as the OpenAI API documents them."""

from __future__ import annotations

import json
from typing import Any

from .wire import Reply

PATH = "/v1/chat/completions"


def completion(
    content: str | None,
    *,
    finish_reason: str = "stop",
    refusal: str | None = None,
    usage: dict[str, int] | None = None,
    model: str = "gpt-4o-mini",
) -> Reply:
    """A 200 answer; `usage` None leaves the field out (some local servers do)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return Reply(200, body)


def storyboard(
    scenes: list[dict[str, Any]], title: str = "A Title", music_mood: str = "calm"
) -> str:
    """The JSON text a model answers with."""
    return json.dumps({"title": title, "music_mood": music_mood, "scenes": scenes})


def scene(
    narration: str | None = None,
    visual: str = "A calm bedroom at night",
    on_screen_text: str = "Heading",
    search_terms: list[str] | None = None,
) -> dict[str, Any]:
    """One scene of an answer (no `narration` key when None: the script form)."""
    out: dict[str, Any] = {} if narration is None else {"narration": narration}
    out |= {
        "visual": visual,
        "on_screen_text": on_screen_text,
        "search_terms": search_terms if search_terms is not None else ["bedroom night"],
    }
    return out


USAGE = {"prompt_tokens": 900, "completion_tokens": 300, "total_tokens": 1200}

TIPS = [
    scene(
        "First, go to bed at the same time every night, even at weekends.",
        "A bedside clock showing ten o'clock",
        "1 · A fixed bedtime",
        ["bedside clock", "alarm clock night"],
    ),
    scene(
        "Second, put your phone away an hour before sleep: its light keeps you awake.",
        "A phone placed face down on a nightstand",
        "2 · No screens",
        ["phone nightstand"],
    ),
    scene(
        "Third, keep your bedroom cool, dark and quiet.",
        "A dark bedroom with the curtains drawn",
        "3 · Cool and dark",
        ["dark bedroom", "curtains"],
    ),
]


def tips_answer() -> Reply:
    """A good answer to "Three tips to sleep better tonight"."""
    return completion(
        storyboard(TIPS, title="Three Tips to Sleep Better Tonight", music_mood="calm"),
        usage=USAGE,
    )
