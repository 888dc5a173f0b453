"""What text of a production is searchable, and how its words are read.

A production is found by the words of its title, its prompt or script, and its
scenes' narration.  Words are read in the production's language: lower-cased
and reduced to their stem (Snowball: "running" and "runs" are both "run",
"chevaux" and "cheval" both "cheval"), so a search finds the forms of a word,
not one spelling.  Languages without a stemmer here are read word for word
(PostgreSQL's ``simple`` configuration).

PostgreSQL stems with its own text-search configurations (the same Snowball
algorithms); SQLite's FTS5 has only an English stemmer, so for SQLite the
words are stemmed here, in Python, before they are indexed, and a query's
words the same way before they are matched.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, cast

import snowballstemmer

from aiprod.production import language as production_language

# Language code -> the name of its PostgreSQL text-search configuration, which
# is also the name of its Snowball stemmer.  Those PostgreSQL has had since
# 9.x and 12 (greek); anything else is read by "simple".
CONFIGS: dict[str, str] = {
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nl": "dutch",
    "no": "norwegian",
    "nb": "norwegian",
    "nn": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
    "tr": "turkish",
}
SIMPLE = "simple"
ALL_CONFIGS: tuple[str, ...] = (*sorted(set(CONFIGS.values())), SIMPLE)

TITLE_CHARS = 200
BODY_CHARS = 200_000  # a 50,000-character script and the narration of every scene

_WORD = re.compile(r"[^\W_]+")  # letters and digits: what FTS5's unicode61 keeps together
MAX_WORD = 64  # longer runs are cut (PostgreSQL refuses lexemes over 2 KB)


def base_language(code: str | None) -> str:
    """``"fr-CA"`` -> ``"fr"``: the primary subtag, lower-cased (``""`` when none)."""
    return (code or "").replace("_", "-").split("-")[0].lower()[:16]


def config_for(language: str | None) -> str:
    """The text-search configuration that reads `language`."""
    return CONFIGS.get(base_language(language), SIMPLE)


@functools.cache
def _stemmer(config: str) -> Any:
    return snowballstemmer.stemmer(config)


@functools.cache
def _stop_words(config: str) -> frozenset[str]:
    """Words not indexed in `config` (PostgreSQL drops its own list; for SQLite
    the engine's list of the same language, where it has one)."""
    codes = [c for c, name in CONFIGS.items() if name == config]
    known = [c for c in codes if c in production_language.LANGUAGES]
    return production_language.stop_words(known[0]) if known else frozenset()


def words(text: str) -> list[str]:
    """The words of `text`, lower-cased, in order (each at most MAX_WORD characters)."""
    return [w[:MAX_WORD] for w in _WORD.findall(text.lower())]


@functools.lru_cache(maxsize=65536)
def stem(config: str, word: str) -> str:
    """`word` (lower-case) as `config` indexes it: its stem, or "" for a stop word."""
    if word in _stop_words(config):
        return ""
    if config == SIMPLE:
        return word
    return cast(str, _stemmer(config).stemWord(word))


def stems(config: str, text: str) -> list[str]:
    """The indexed form of every word of `text` (stop words dropped)."""
    return [s for s in (stem(config, w) for w in words(text)) if s]


@dataclass(frozen=True)
class Document:
    """A production's searchable text, split as it is indexed."""

    config: str
    title: str
    body: str

    def stemmed(self) -> tuple[str, str]:
        """Title and body as SQLite's index stores them: stems separated by spaces."""
        return " ".join(stems(self.config, self.title)), " ".join(stems(self.config, self.body))


def document(
    title: str | None,
    request: dict[str, Any] | None,
    storyboard: dict[str, Any] | None,
    language: str | None,
) -> Document:
    """The searchable text of a job row: its title; its prompt, script and the
    narration of its scenes."""
    request = request or {}
    parts: list[str] = [str(request[k]) for k in ("prompt", "script") if request.get(k)]
    scenes = (storyboard or {}).get("scenes")
    if isinstance(scenes, list):
        parts += [str(s["narration"]) for s in scenes if isinstance(s, dict) and s.get("narration")]
    body = _clip("\n".join(parts)[:BODY_CHARS])
    return Document(config_for(language), _clip((title or "")[:TITLE_CHARS]), body)


_LONG_WORD = re.compile(rf"[^\W_]{{{MAX_WORD + 1},}}")


def _clip(text: str) -> str:
    """`text` with every word cut to MAX_WORD characters, as queries are."""
    return _LONG_WORD.sub(lambda m: m.group()[:MAX_WORD], text)
