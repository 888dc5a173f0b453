"""Subtitles: word timings become readable cues, and cues become SRT / WebVTT.

The narrator gives us a timing for every word.  Showing words one at a time is
unreadable and showing a whole scene at once is too much text, so words are
grouped into cues following common broadcast practice: at most two lines of about
42 characters, at most ~7 seconds on screen, at least ~0.8 s (shorter flashes
cannot be read), breaking at punctuation or pauses where possible so a cue reads
as a phrase.  Cues never overlap, because several players (and our own burn-in)
show only one cue at a time and would otherwise drop text.

The parsers are deliberately tolerant (CRLF, BOM, cue settings, identifiers,
``mm:ss.ttt`` timestamps) because QA reads the sidecars back and tests round-trip
them; a strict parser would turn a cosmetic difference into a failed production.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from aiprod.production.language import stop_words
from aiprod.production.models import Narration, Storyboard, SubtitleCue, WordTiming

MAX_LINE_CHARS = 42
"""Characters per line; the usual limit for 16:9 broadcast and streaming subtitles."""
VERTICAL_LINE_CHARS = 28
"""Characters per line on 9:16 video (larger text, shorter lines)."""
MAX_LINES = 2
MAX_CUE_SECONDS = 7.0
MIN_CUE_SECONDS = 0.8
LINGER_SECONDS = 0.15
"""How long a cue stays after its last word when nothing follows it at once."""
CHAIN_GAP_SECONDS = 0.6
"""Gaps shorter than this between two cues are closed: flicker is harder to read
than a cue that stays a moment longer, and it keeps speech covered."""
PAUSE_BREAK_SECONDS = 0.7
"""A pause this long between words starts a new cue."""
MIN_SENTENCE_CHARS = 16
"""A sentence end starts a new cue unless the cue so far is shorter than this."""

_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_CLAUSE_END = re.compile(r"[,;:—–\-][\"'”’)\]]*$")


def line_chars_for(width: int, height: int) -> int:
    """Characters per subtitle line for a frame: `MAX_LINE_CHARS`, or
    `VERTICAL_LINE_CHARS` on vertical video, where a phone shows big, short
    lines inside the platforms' safe area."""
    return VERTICAL_LINE_CHARS if height >= 1.5 * width else MAX_LINE_CHARS


def cues_from_narrations(
    storyboard: Storyboard,
    narrations: Sequence[Narration],
    lead: float,
    line_chars: int = MAX_LINE_CHARS,
) -> list[SubtitleCue]:
    """Group each scene's word timings into cues on the final timeline, lines
    of at most `line_chars` characters; each cue keeps its words' timings.

    Narration ``i`` plays from ``storyboard.starts()[i] + lead``.  A narration
    without word timings (a backend that cannot give them) but with scene text gets
    timings spread over its duration in proportion to word length, so it is still
    subtitled.  Cues end by the end of the production.
    """
    rules = _Rules(line_chars, stop_words(storyboard.language))
    starts = storyboard.starts()
    total = storyboard.duration
    spans: list[tuple[float, float, str, list[WordTiming]]] = []
    for i, narration in enumerate(narrations[: len(storyboard.scenes)]):
        words = [w for w in narration.words if w.text.strip()]
        if not words and storyboard.scenes[i].narration.strip():
            words = _spread(storyboard.scenes[i].narration, narration.duration)
        offset = starts[i] + lead
        for group in _group(words, rules):
            lines = _layout([w.text.strip() for w in group], rules)
            text = "\n".join(lines) if lines else " ".join(w.text.strip() for w in group)
            start = offset + max(0.0, group[0].start)
            end = offset + max(group[-1].end, group[0].start)
            timed = [
                WordTiming(
                    text=w.text.strip(),
                    start=round(offset + w.start, 3),
                    end=round(offset + max(w.end, w.start), 3),
                )
                for w in group
            ]
            spans.append((start, end, text, timed))
    spans.sort(key=lambda s: s[0])
    return _settle(spans, total)


def _spread(text: str, duration: float) -> list[WordTiming]:
    """Timings for text with none: each word gets time in proportion to its length."""
    tokens = text.split()
    if not tokens or duration <= 0:
        return []
    weights = [len(t) + 1 for t in tokens]
    scale = duration / sum(weights)
    out, t = [], 0.0
    for token, weight in zip(tokens, weights, strict=True):
        out.append(WordTiming(text=token, start=t, end=t + weight * scale))
        t += weight * scale
    return out


def _chars(words: Sequence[WordTiming]) -> int:
    return len(" ".join(w.text.strip() for w in words))


@dataclass(frozen=True)
class _Rules:
    """How one production's cues are cut: characters per line, and the words of
    its language that bind to what follows (articles, prepositions,
    conjunctions: `language.stop_words`), which neither a cue nor a line
    should end on ("…the | grinder")."""

    line_chars: int
    binding: frozenset[str]


def _layout(words: Sequence[str], rules: _Rules) -> list[str] | None:
    """Best split of the words into at most two lines, or None if they do not fit.

    One line when it fits; otherwise the split that keeps the longer line shortest,
    preferring a break after a comma or similar (reads as a phrase).  A single word
    longer than a line is allowed on its own: there is nowhere to break it.
    """
    if not words:
        return []
    one = " ".join(words)
    if len(one) <= rules.line_chars or len(words) == 1:
        return [one]
    best: tuple[float, list[str]] | None = None
    for k in range(1, len(words)):
        top, bottom = " ".join(words[:k]), " ".join(words[k:])
        if len(top) > rules.line_chars or len(bottom) > rules.line_chars:
            continue
        score = float(max(len(top), len(bottom)))
        if _CLAUSE_END.search(words[k - 1]) or _SENTENCE_END.search(words[k - 1]):
            score -= 6.0
        elif _bare(words[k - 1]) in rules.binding:
            score += 6.0  # "…from the\nhive": the line ends on a word that binds on
        if best is None or score < best[0]:
            best = (score, [top, bottom])
    return None if best is None else best[1]


BREAK_COST_SENTENCE = 0.0
BREAK_COST_CLAUSE = 3.0
BREAK_COST_WORD = 7.0
BREAK_COST_DANGLING = 24.0
CUE_COST = 6.0
"""Per cue: fewer, fuller cues read better than many flashes."""
ORPHAN_COST = 30.0
"""A cue of one or two words cut from a longer phrase ("grinder.")."""
SHORT_CUE_COST = 8.0
MAX_CUE_WORDS = 24


def _bare(word: str) -> str:
    return word.lower().strip("\"'“”‘’«»()[]")


def _break_cost(word: str, rules: _Rules) -> float:
    """Cost of ending a cue after `word` when more words follow."""
    if _SENTENCE_END.search(word):
        return BREAK_COST_SENTENCE
    if _CLAUSE_END.search(word):
        return BREAK_COST_CLAUSE
    if _bare(word) in rules.binding:
        return BREAK_COST_DANGLING
    return BREAK_COST_WORD


def _cue_cost(run: Sequence[WordTiming], i: int, j: int, rules: _Rules) -> float | None:
    """Cost of showing ``run[i:j]`` as one cue, None when it cannot be one (too
    long for two lines or for `MAX_CUE_SECONDS`; a single word always can)."""
    texts = [w.text.strip() for w in run[i:j]]
    if j - i > 1 and (
        _layout(texts, rules) is None or run[j - 1].end - run[i].start > MAX_CUE_SECONDS
    ):
        return None
    cost = CUE_COST
    if j - i <= 2 and len(run) >= 4:
        cost += ORPHAN_COST
    if run[j - 1].end - run[i].start < MIN_CUE_SECONDS or len(" ".join(texts)) < 12:
        cost += SHORT_CUE_COST
    if j < len(run):
        cost += _break_cost(texts[-1], rules)
    # A sentence that ends inside the cue after a long enough start would read
    # better as the cue's end (the next sentence then starts a cue of its own).
    for k in range(i + 1, j):
        if _SENTENCE_END.search(run[k - 1].text.strip()) and _chars(run[i:k]) >= (
            MIN_SENTENCE_CHARS
        ):
            cost += 4.0
    return cost


def _segment(run: Sequence[WordTiming], rules: _Rules) -> list[list[WordTiming]]:
    """The cheapest split of a run of words (no long pause inside) into cues:
    dynamic programming over break points, so cues end at phrase boundaries,
    no cue is an orphan of one or two words, and none ends on a word that binds
    to the next."""
    n = len(run)
    best: list[float] = [0.0] + [math.inf] * n
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - MAX_CUE_WORDS), j):
            if best[i] == math.inf:
                continue
            cost = _cue_cost(run, i, j, rules)
            if cost is not None and best[i] + cost < best[j]:
                best[j], back[j] = best[i] + cost, i
    groups: list[list[WordTiming]] = []
    j = n
    while j > 0:
        groups.append(list(run[back[j] : j]))
        j = back[j]
    return groups[::-1]


def _group(words: Sequence[WordTiming], rules: _Rules) -> list[list[WordTiming]]:
    """Cues of a scene's words: runs split at pauses, each run segmented."""
    groups: list[list[WordTiming]] = []
    run: list[WordTiming] = []
    for w in words:
        if run and w.start - run[-1].end >= PAUSE_BREAK_SECONDS:
            groups += _segment(run, rules)
            run = []
        run.append(w)
    if run:
        groups += _segment(run, rules)
    return groups


def _settle(
    spans: list[tuple[float, float, str, list[WordTiming]]], total: float
) -> list[SubtitleCue]:
    """Apply linger, minimum duration and gap chaining, then remove overlaps.

    Each cue may grow into the silence after it but never past the next cue's
    start, so speech timing wins over the minimum duration when they conflict.
    If two scenes' narrations overlap, the later cue is pushed back a little
    rather than shown on top of the earlier one.
    """
    out: list[SubtitleCue] = []
    for k, (start, end, text, words) in enumerate(spans):
        if out and start < out[-1].end:
            start = out[-1].end
        end = max(end + LINGER_SECONDS, start + MIN_CUE_SECONDS)
        if k + 1 < len(spans):
            nxt = spans[k + 1][0]
            if end > nxt - CHAIN_GAP_SECONDS:
                # Close a small gap, or cut an overlap (keeping a sliver that the
                # next cue is then pushed behind).
                end = max(nxt, start + 0.3)
        end = min(end, total)
        if end - start < 0.05:
            continue
        out.append(SubtitleCue(start=round(start, 3), end=round(end, 3), text=text, words=words))
    return out


# --- formatting -----------------------------------------------------------------


def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _clean(text: str) -> str:
    """Cue text may not contain blank lines (they end a cue) nor the arrow."""
    lines = [ln.strip() for ln in text.replace("\r", "").split("\n")]
    return "\n".join(ln for ln in lines if ln).replace("-->", "->")


def to_srt(cues: Sequence[SubtitleCue]) -> str:
    """SubRip: numbered blocks, ``HH:MM:SS,mmm`` times, blank line between blocks."""
    blocks = []
    for n, cue in enumerate(cues, start=1):
        blocks.append(
            f"{n}\n{_stamp(cue.start, ',')} --> {_stamp(cue.end, ',')}\n{_clean(cue.text)}\n"
        )
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Sequence[SubtitleCue]) -> str:
    """WebVTT: ``WEBVTT`` header, ``HH:MM:SS.mmm`` times, text with &, < and > escaped."""
    out = ["WEBVTT\n"]
    for n, cue in enumerate(cues, start=1):
        out.append(
            f"{n}\n{_stamp(cue.start, '.')} --> {_stamp(cue.end, '.')}\n"
            f"{_vtt_escape(_clean(cue.text))}\n"
        )
    return "\n".join(out)


# --- parsing ----------------------------------------------------------------------

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]*>")


def _seconds(h: str | None, m: str, s: str, frac: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def _blocks(text: str) -> list[list[str]]:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return [b.split("\n") for b in re.split(r"\n[ \t]*\n", text.strip()) if b.strip()]


def _parse(text: str, *, vtt: bool) -> list[SubtitleCue]:
    cues: list[SubtitleCue] = []
    for lines in _blocks(text):
        idx = next((i for i, ln in enumerate(lines) if "-->" in ln), None)
        if idx is None:
            continue  # header, NOTE, STYLE, REGION or a stray index
        m = _TIMING.match(lines[idx])
        if m is None:
            raise ValueError(f"bad cue timing line: {lines[idx]!r}")
        g = m.groups()
        start, end = _seconds(*g[:4]), _seconds(*g[4:])
        body = "\n".join(ln.strip() for ln in lines[idx + 1 :] if ln.strip())
        if vtt:
            body = _TAG.sub("", body)
            body = body.replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", "\u00a0")
            body = body.replace("&amp;", "&")
        cues.append(SubtitleCue(start=start, end=end, text=body))
    return cues


def parse_srt(text: str) -> list[SubtitleCue]:
    """Cues from SubRip text (tolerates CRLF, a BOM and missing indices)."""
    return _parse(text, vtt=False)


def parse_vtt(text: str) -> list[SubtitleCue]:
    """Cues from WebVTT text (skips NOTE/STYLE/REGION blocks, cue settings and tags)."""
    stripped = text.lstrip("\ufeff")
    if not stripped.startswith("WEBVTT"):
        raise ValueError("not a WebVTT file: missing WEBVTT header")
    return _parse(stripped, vtt=True)
