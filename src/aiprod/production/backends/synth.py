"""Procedural background music: a small synthesiser that plays a chord progression.

Size (~670 lines): the moods are data, but the instruments, drums and the
section renderer they drive share one sample clock and one set of buffers.

Why procedural: the engine must work offline with no licensed audio, and the
music has to fit any duration exactly.  Each mood is a little arrangement
(tempo, key, mode, progressions, instruments, drum pattern); the seed picks
the progression, the arpeggio figure, the melody and the drum ghost notes.

Why it is fast: every note is one vectorised numpy expression over its own
samples, and only two eight-bar sections (a verse without melody and a chorus
with it) are ever rendered, each with the tail that rings past its end (note
releases, echoes, reverb).  They are laid end to end to fill the requested
duration, each tail overlap-added onto the next section so that the joins are
seamless, so five minutes cost no more than sixteen bars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.signal import butter, fftconvolve, sosfilt

from aiprod.production.media.audio import write_wav
from aiprod.production.models import MUSIC_MOODS, MusicMood

SAMPLE_RATE = 48_000
PEAK_DBFS = -1.0
BARS_PER_SECTION = 8
TAIL_SECONDS = 2.0  # longest note release/echo that can ring past a section's end
STEPS_PER_BAR = 16  # drum and rhythm grid: sixteenth notes in 4/4

Signal = NDArray[np.float64]
Stereo = NDArray[np.float64]  # shape (n, 2)

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_PHRYGIAN = (0, 1, 3, 5, 7, 8, 10)

PadKind = Literal["saw", "soft", "organ"]
ArpKind = Literal["pluck", "bell", "none"]
BassKind = Literal["round", "saw"]


@dataclass(frozen=True)
class MoodSpec:
    """One mood's arrangement.  Steps are sixteenths within a bar (0-15)."""

    bpm: float
    root: int  # MIDI note of the tonic in the bass octave
    scale: tuple[int, ...]
    progressions: tuple[tuple[int, ...], ...]  # scale degrees, one chord each
    bars_per_chord: int
    chord_size: int  # 3 = triads, 4 = sevenths
    pad: PadKind
    pad_cutoff: float  # Hz, low-pass on the pad
    bass: BassKind
    bass_steps: tuple[int, ...]
    bass_len: float  # note length in sixteenths
    arp: ArpKind
    arp_step: int  # sixteenths between arpeggio notes
    lead: bool
    kick: tuple[int, ...]
    snare: tuple[int, ...]
    clap: tuple[int, ...]
    hat: tuple[int, ...]
    shaker: tuple[int, ...]
    reverb_seconds: float
    reverb_wet: float
    drum_level: float = 1.0


MOODS: dict[str, MoodSpec] = {
    "uplifting": MoodSpec(
        bpm=118,
        root=38,  # D
        scale=_MAJOR,
        progressions=((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4)),
        bars_per_chord=1,
        chord_size=3,
        pad="saw",
        pad_cutoff=2400,
        bass="round",
        bass_steps=(0, 2, 4, 6, 8, 10, 12, 14),
        bass_len=1.6,
        arp="pluck",
        arp_step=2,
        lead=True,
        kick=(0, 4, 8, 12),
        snare=(4, 12),
        clap=(),
        hat=(2, 6, 10, 14),
        shaker=(),
        reverb_seconds=1.8,
        reverb_wet=0.22,
    ),
    "calm": MoodSpec(
        bpm=76,
        root=41,  # F
        scale=_MAJOR,
        progressions=((0, 5, 3, 4), (0, 3, 5, 4), (3, 0, 4, 5)),
        bars_per_chord=2,
        chord_size=4,
        pad="soft",
        pad_cutoff=1400,
        bass="round",
        bass_steps=(0, 8),
        bass_len=7.0,
        arp="pluck",
        arp_step=2,
        lead=True,
        kick=(0, 8),
        snare=(),
        clap=(),
        hat=(),
        shaker=(0, 2, 4, 6, 8, 10, 12, 14),
        reverb_seconds=2.6,
        reverb_wet=0.32,
        drum_level=0.55,
    ),
    "dramatic": MoodSpec(
        bpm=92,
        root=38,  # D
        scale=_MINOR,
        progressions=((0, 5, 2, 6), (0, 3, 5, 4), (0, 5, 6, 4)),
        bars_per_chord=1,
        chord_size=3,
        pad="saw",
        pad_cutoff=1800,
        bass="saw",
        bass_steps=(0, 2, 4, 6, 8, 10, 12, 14),
        bass_len=1.7,
        arp="none",
        arp_step=4,
        lead=True,
        kick=(0, 4, 8, 12),
        snare=(12,),
        clap=(),
        hat=(),
        shaker=(),
        reverb_seconds=2.8,
        reverb_wet=0.3,
    ),
    "corporate": MoodSpec(
        bpm=108,
        root=43,  # G
        scale=_MAJOR,
        progressions=((0, 5, 3, 4), (0, 4, 5, 3), (3, 4, 0, 5)),
        bars_per_chord=1,
        chord_size=4,
        pad="soft",
        pad_cutoff=2000,
        bass="round",
        bass_steps=(0, 3, 6, 8, 11, 14),
        bass_len=2.5,
        arp="pluck",
        arp_step=2,
        lead=False,
        kick=(0, 4, 8, 12),
        snare=(),
        clap=(4, 12),
        hat=(2, 6, 10, 14),
        shaker=(1, 3, 5, 7, 9, 11, 13, 15),
        reverb_seconds=1.6,
        reverb_wet=0.2,
    ),
    "playful": MoodSpec(
        bpm=126,
        root=36,  # C
        scale=_MAJOR,
        progressions=((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4)),
        bars_per_chord=1,
        chord_size=3,
        pad="organ",
        pad_cutoff=3000,
        bass="round",
        bass_steps=(0, 4, 8, 12),
        bass_len=1.2,
        arp="bell",
        arp_step=2,
        lead=True,
        kick=(0, 4, 8, 12),
        snare=(4, 12),
        clap=(),
        hat=(0, 2, 4, 6, 8, 10, 12, 14),
        shaker=(),
        reverb_seconds=1.2,
        reverb_wet=0.18,
    ),
    "dark": MoodSpec(
        bpm=68,
        root=37,  # C#
        scale=_PHRYGIAN,
        progressions=((0, 1, 0, 6), (0, 5, 1, 0), (0, 6, 5, 1)),
        bars_per_chord=2,
        chord_size=3,
        pad="saw",
        pad_cutoff=900,
        bass="saw",
        bass_steps=(0, 4, 8, 12),
        bass_len=3.0,
        arp="bell",
        arp_step=4,
        lead=False,
        kick=(0, 4, 8, 12),
        snare=(),
        clap=(),
        hat=(2, 6, 10, 14),
        shaker=(),
        reverb_seconds=3.2,
        reverb_wet=0.35,
        drum_level=0.7,
    ),
}

# Arpeggio figures: indices into the chord's tones (>= chord size wraps up an octave).
_ARP_FIGURES: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4, 3, 2, 1),
    (0, 2, 1, 3, 2, 4, 3, 1),
    (4, 3, 2, 1, 0, 1, 2, 3),
    (0, 2, 4, 2, 1, 3, 5, 3),
    (0, 1, 2, 4, 0, 2, 3, 5),
)

# Melody rhythms for one bar: (start step, length in steps).
_RHYTHMS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 4), (4, 2), (6, 2), (8, 6)),
    ((0, 6), (6, 2), (8, 4), (12, 4)),
    ((2, 2), (4, 4), (8, 2), (10, 6)),
    ((0, 3), (3, 3), (6, 2), (8, 8)),
    ((0, 8), (8, 4), (12, 4)),
)


def _hz(midi: float | NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0))


def _pan(mono: Signal, pan: float) -> Stereo:
    """Equal-power pan; -1 is hard left, +1 hard right."""
    angle = (pan + 1.0) * np.pi / 4.0
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)], axis=1)


def _adsr(n: int, attack: float, release: float, sustain_len: int | None = None) -> Signal:
    """Linear attack, hold until `sustain_len` samples, then a raised-cosine release."""
    env = np.ones(n)
    a = min(n, max(1, int(attack * SAMPLE_RATE)))
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    hold = n if sustain_len is None else min(n, sustain_len)
    r = n - hold
    if r > 0:
        env[hold:] *= 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, r)))
    return env


def _lowpass(x: NDArray[np.float64], cutoff: float, order: int = 2) -> NDArray[np.float64]:
    sos = butter(order, min(cutoff, 0.45 * SAMPLE_RATE), "low", fs=SAMPLE_RATE, output="sos")
    return np.asarray(sosfilt(sos, x, axis=0), dtype=np.float64)


def _highpass(x: NDArray[np.float64], cutoff: float, order: int = 2) -> NDArray[np.float64]:
    sos = butter(order, cutoff, "high", fs=SAMPLE_RATE, output="sos")
    return np.asarray(sosfilt(sos, x, axis=0), dtype=np.float64)


class _Bus:
    """A stereo buffer for one section plus room for what rings past its end.

    Notes are added at sample offsets; anything beyond the buffer is dropped
    (the room is sized so that only inaudible decay is lost).
    """

    def __init__(self, length: int) -> None:
        self.data = np.zeros((length, 2))

    def add(self, start: int, sig: Stereo) -> None:
        take = min(sig.shape[0], self.data.shape[0] - start)
        if take > 0:
            self.data[start : start + take] += sig[:take]


@dataclass(frozen=True)
class _Kit:
    """One-shot drum sounds, synthesised once per render from noise and sines."""

    kick: Signal
    snare: Signal
    clap: Signal
    hat: Signal
    shaker: Signal


def _make_kit(rng: np.random.Generator) -> _Kit:
    def t_of(seconds: float) -> Signal:
        return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE

    t = t_of(0.45)
    freq = 48.0 + 110.0 * np.exp(-t / 0.035)  # pitch drop gives the "thump"
    kick = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t / 0.16)
    click = rng.standard_normal(len(t)) * np.exp(-t / 0.002) * 0.3
    kick = np.tanh(1.6 * (kick + click)) / np.tanh(1.6)

    t = t_of(0.3)
    noise = _highpass(rng.standard_normal(len(t)), 1500.0) * np.exp(-t / 0.09)
    body = np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.05)
    snare = 0.55 * noise / np.abs(noise).max() + 0.6 * body

    t = t_of(0.35)
    bursts = np.zeros(len(t))
    for offset in (0.0, 0.011, 0.022):
        shifted = np.clip(t - offset, 0.0, None)
        bursts += np.where(t >= offset, np.exp(-shifted / 0.008), 0.0)
    tail = np.exp(-t / 0.12) * 0.5
    clap_noise = _lowpass(_highpass(rng.standard_normal(len(t)), 900.0), 4000.0)
    clap = clap_noise * (bursts + tail)
    clap /= np.abs(clap).max()

    t = t_of(0.08)
    hat = _highpass(rng.standard_normal(len(t)), 7000.0) * np.exp(-t / 0.018)
    hat /= np.abs(hat).max()

    t = t_of(0.1)
    shaker = _highpass(rng.standard_normal(len(t)), 4500.0) * (
        np.minimum(t / 0.012, 1.0) * np.exp(-t / 0.035)
    )
    shaker /= np.abs(shaker).max()
    return _Kit(kick=kick, snare=snare, clap=clap, hat=hat, shaker=shaker)


def _chord(spec: MoodSpec, degree: int) -> list[int]:
    """Chord tones (semitones above the tonic) stacked in thirds on a scale degree."""
    tones = []
    for k in range(spec.chord_size):
        d = degree + 2 * k
        tones.append(spec.scale[d % 7] + 12 * (d // 7))
    return tones


def _voiced(spec: MoodSpec, tones: list[int], low: int) -> list[int]:
    """Chord tones folded into one octave above MIDI note `low`: smooth voice leading."""
    return sorted(low + (spec.root + t - low) % 12 for t in tones)


def _pluck(midi: int) -> Signal:
    """A plucked string: harmonics whose decay quickens with their number."""
    n = int(0.9 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f = float(_hz(midi))
    wave = np.zeros(n)
    for k in range(1, 9):
        if k * f > 0.4 * SAMPLE_RATE:
            break
        wave += np.sin(2 * np.pi * k * f * t) * np.exp(-t * (4.0 + 3.5 * k)) / k
    wave *= np.minimum(t / 0.002, 1.0)
    return wave


def _bell(midi: int) -> Signal:
    """Marimba/bell: inharmonic partials, the upper ones dying fast."""
    n = int(1.0 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f = float(_hz(midi))
    wave = np.zeros(n)
    for ratio, amp, decay in ((1.0, 1.0, 5.0), (3.93, 0.35, 16.0), (9.2, 0.12, 40.0)):
        if ratio * f < 0.4 * SAMPLE_RATE:
            wave += amp * np.sin(2 * np.pi * ratio * f * t) * np.exp(-t * decay)
    wave *= np.minimum(t / 0.0015, 1.0)
    return wave


@dataclass
class _Renderer:
    """Plays one mood's arrangement, with the seed's choices, into section buffers."""

    spec: MoodSpec
    rng: np.random.Generator
    progression: tuple[int, ...]
    arp_figure: tuple[int, ...]
    kit: _Kit
    pads: dict[tuple[int, float], Stereo] = field(default_factory=dict)
    strikes: dict[int, Signal] = field(default_factory=dict)

    @property
    def step_seconds(self) -> float:
        return 60.0 / self.spec.bpm / 4.0

    def at(self, step: float) -> int:
        return round(step * self.step_seconds * SAMPLE_RATE)

    def chord_at_bar(self, bar: int) -> int:
        return self.progression[(bar // self.spec.bars_per_chord) % len(self.progression)]

    # --- instruments ------------------------------------------------------------------------

    def pad_note(self, midi: int, seconds: float, level: float) -> Stereo:
        """Three detuned voices spread across the stereo field, low-passed.

        Cached per (note, length): a progression repeats within a section and
        the pad is the costliest part to synthesise.
        """
        cached = self.pads.get((midi, seconds))
        if cached is None:
            cached = self.pads[(midi, seconds)] = self._pad(midi, seconds)
        return cached * level

    def _pad(self, midi: int, seconds: float) -> Stereo:
        spec = self.spec
        release = 1.2
        n = int((seconds + release) * SAMPLE_RATE)
        idx = np.arange(n, dtype=np.float64)
        out = np.zeros((n, 2))
        f = float(_hz(midi))
        for detune, pan in ((-0.09, -0.7), (0.0, 0.0), (0.09, 0.7)):
            cycles = idx * (f * 2.0 ** (detune / 12.0) / SAMPLE_RATE)
            cycles += self.rng.random()
            if spec.pad == "saw":
                np.remainder(cycles, 1.0, out=cycles)
                wave = cycles
                wave *= 2.0
                wave -= 1.0
            else:
                cycles *= 2 * np.pi
                s = np.sin(cycles)
                c = np.cos(cycles)
                # Harmonics by identity: sin 2x = 2 sin x cos x, sin 3x = sin x (3 - 4 sin² x).
                if spec.pad == "organ":
                    wave = s * (1.0 + c + 0.25 * (3.0 - 4.0 * s * s))
                else:
                    wave = s * (1.0 + 0.6 * c)
            angle = (pan + 1.0) * np.pi / 4.0
            out[:, 0] += np.cos(angle) * wave
            out[:, 1] += np.sin(angle) * wave
        if spec.pad == "soft":  # a slow tremolo keeps sustained sines alive
            out *= (1.0 + 0.15 * np.sin(idx * (2 * np.pi * 0.3 / SAMPLE_RATE)))[:, None]
        out = _lowpass(out, spec.pad_cutoff)
        attack = 0.35 if spec.pad != "organ" else 0.02
        out *= _adsr(n, attack, release, int(seconds * SAMPLE_RATE))[:, None]
        return out

    def bass_note(self, midi: int, seconds: float, level: float) -> Stereo:
        n = int((seconds + 0.06) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        f = float(_hz(midi))
        if self.spec.bass == "saw":
            wave = _lowpass(2.0 * ((f * t) % 1.0) - 1.0, 420.0, order=2) * 1.6
            wave += 0.6 * np.sin(2 * np.pi * f * t)
        else:
            wave = np.sin(2 * np.pi * f * t) + 0.25 * np.sin(4 * np.pi * f * t)
        wave = np.tanh(1.4 * wave)
        env = _adsr(n, 0.006, 0.06, int(seconds * SAMPLE_RATE)) * (0.75 + 0.25 * np.exp(-t / 0.15))
        return _pan(wave * env * level, 0.0)

    def struck_note(self, midi: int, level: float, pan: float) -> Stereo:
        """One arpeggio note (pluck or bell), cached per pitch: figures repeat constantly."""
        cached = self.strikes.get(midi)
        if cached is None:
            cached = _pluck(midi) if self.spec.arp == "pluck" else _bell(midi)
            self.strikes[midi] = cached
        return _pan(cached * level, pan)

    def lead_note(self, midi: int, seconds: float, level: float) -> Stereo:
        n = int((seconds + 0.15) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        f = float(_hz(midi))
        vibrato = 0.004 * np.minimum(t / 0.4, 1.0) * np.sin(2 * np.pi * 5.2 * t)
        phase = np.cumsum(f * (1.0 + vibrato)) / SAMPLE_RATE
        wave = np.sin(2 * np.pi * phase) + 0.18 * np.sin(6 * np.pi * phase)
        wave += 0.08 * np.sin(4 * np.pi * phase)
        env = _adsr(n, 0.025, 0.15, int(seconds * SAMPLE_RATE))
        return _pan(wave * env * level, 0.1)

    # --- parts ------------------------------------------------------------------------------

    def harmony(self, bus: _Bus, send: _Bus) -> None:
        """Pad chords (one per `bars_per_chord`) and the bass line on each chord's root."""
        spec = self.spec
        bar_steps = STEPS_PER_BAR
        for bar in range(0, BARS_PER_SECTION, spec.bars_per_chord):
            tones = _chord(spec, self.chord_at_bar(bar))
            seconds = spec.bars_per_chord * bar_steps * self.step_seconds
            start = self.at(bar * bar_steps)
            for note in _voiced(spec, tones, spec.root + 17):
                sig = self.pad_note(note, seconds, 0.11)
                bus.add(start, sig)
                send.add(start, sig)
            root = spec.root + tones[0] % 12
            for b in range(spec.bars_per_chord):
                for i, step in enumerate(spec.bass_steps):
                    nxt = spec.bass_steps[i + 1] if i + 1 < len(spec.bass_steps) else bar_steps
                    length = min(spec.bass_len, nxt - step) * self.step_seconds
                    octave = 12 if spec.bass == "round" and step % 8 == 6 else 0
                    accent = 1.0 if step % 4 == 0 else 0.8
                    s = self.at((bar + b) * bar_steps + step)
                    bus.add(s, self.bass_note(root + octave, length, 0.42 * accent))

    def arpeggio(self, bus: _Bus, send: _Bus) -> None:
        """The seed's figure over the current chord, accented on the beat (carries the pulse)."""
        spec = self.spec
        if spec.arp == "none":
            return
        figure = self.arp_figure
        steps = range(0, BARS_PER_SECTION * STEPS_PER_BAR, spec.arp_step)
        for count, step in enumerate(steps):
            bar = step // STEPS_PER_BAR
            tones = _voiced(spec, _chord(spec, self.chord_at_bar(bar)), spec.root + 29)
            idx = figure[count % len(figure)]
            note = tones[idx % len(tones)] + 12 * (idx // len(tones))
            on_beat = step % 4 == 0
            level = (0.45 if on_beat else 0.28) * (0.9 + 0.2 * self.rng.random())
            pan = 0.35 if count % 2 == 0 else -0.35  # ping-pong
            sig = self.struck_note(note, level, pan)
            bus.add(self.at(step), sig)
            send.add(self.at(step), sig)

    def melody(self, bus: _Bus, send: _Bus) -> None:
        """A seeded tune: chord tones on strong beats, scale steps between, two-bar phrases."""
        spec = self.spec
        scale = spec.scale
        degree = int(self.rng.integers(0, 5))  # position in the scale, relative to the tonic
        base = spec.root + 24
        phrase = [int(self.rng.integers(len(_RHYTHMS))) for _ in range(2)]
        for bar in range(BARS_PER_SECTION):
            rhythm = _RHYTHMS[phrase[bar % 2]]
            chord = self.chord_at_bar(bar)
            chord_degrees = [chord + 2 * k for k in range(spec.chord_size)]
            for j, (step, length) in enumerate(rhythm):
                strong = step % 8 == 0
                if strong:  # land on the nearest chord tone
                    degree = min(
                        (d + 7 * o for d in chord_degrees for o in (-1, 0, 1)),
                        key=lambda d: (abs(d - degree), d),
                    )
                else:
                    degree += int(self.rng.choice((-2, -1, 1, 2)))
                degree = max(-2, min(9, degree))
                if bar % 2 == 1 and j == len(rhythm) - 1:
                    degree = chord  # end each phrase on the chord's root
                note = base + scale[degree % 7] + 12 * (degree // 7)
                seconds = length * self.step_seconds * 0.92
                start = self.at(bar * STEPS_PER_BAR + step)
                sig = self.lead_note(note, seconds, 0.16)
                bus.add(start, sig)
                send.add(start, sig * 1.3)
                # A dotted-eighth ping-pong echo gives the lead space.
                delay = self.at(3)
                for k, side in ((1, -0.8), (2, 0.8)):
                    echo = sig.mean(axis=1) * 0.32**k
                    bus.add(start + k * delay, _pan(echo, side))

    def drums(self, bus: _Bus, send: _Bus, full: bool) -> None:
        """The mood's pattern; `full` (chorus) adds snare or clap and a fill in the last bar."""
        spec, kit = self.spec, self.kit
        d = spec.drum_level
        for bar in range(BARS_PER_SECTION):
            base = bar * STEPS_PER_BAR
            last_bar = bar == BARS_PER_SECTION - 1
            for step in spec.kick:
                level = 0.9 if step % 8 == 0 else 0.75
                bus.add(self.at(base + step), _pan(kit.kick * (level * d), 0.0))
            if full:
                for step in spec.snare:
                    sig = _pan(kit.snare * (0.5 * d), 0.05)
                    bus.add(self.at(base + step), sig)
                    send.add(self.at(base + step), sig * 0.6)
                for step in spec.clap:
                    sig = _pan(kit.clap * (0.42 * d), -0.05)
                    bus.add(self.at(base + step), sig)
                    send.add(self.at(base + step), sig * 0.7)
                if last_bar and (spec.snare or spec.clap):  # a short fill into the repeat
                    fill = kit.snare if spec.snare else kit.clap
                    for step, lvl in ((13, 0.22), (14, 0.3), (15, 0.38)):
                        bus.add(self.at(base + step), _pan(fill * (lvl * d), 0.0))
            for step in spec.hat:
                ghost = 0.85 + 0.3 * self.rng.random()
                bus.add(self.at(base + step), _pan(kit.hat * (0.13 * ghost * d), 0.3))
            for step in spec.shaker:
                accent = 1.0 if step % 4 == 0 else 0.6
                ghost = 0.85 + 0.3 * self.rng.random()
                bus.add(self.at(base + step), _pan(kit.shaker * (0.1 * accent * ghost * d), -0.3))

    def sections(self, section_len: int, reverb_ir: Stereo) -> list[Stereo]:
        """Verse and chorus: eight bars each, plus the tail that rings past the eighth.

        Both share the pad, bass and arpeggio (rendered once); the chorus adds
        the melody, the snare or clap and a fill.  The tail is overlap-added
        onto whatever section follows, so repeats join without a click.
        """
        spec = self.spec
        length = section_len + int((TAIL_SECONDS + spec.reverb_seconds) * SAMPLE_RATE)
        base, base_send = _Bus(length), _Bus(length)
        self.harmony(base, base_send)
        self.arpeggio(base, base_send)
        out: list[Stereo] = []
        for full in (False, True):
            bus, send = _Bus(length), _Bus(length)
            if full and spec.lead:
                self.melody(bus, send)
            self.drums(bus, send, full)
            # float32 halves the FFT cost; a reverb tail needs no more precision.
            dry = (base_send.data + send.data).astype(np.float32)
            wet = fftconvolve(dry, reverb_ir.astype(np.float32), axes=0)[:length]
            out.append(base.data + bus.data + spec.reverb_wet * wet)
        return out


def _reverb_ir(seconds: float, rng: np.random.Generator) -> Stereo:
    """Exponentially decaying, darkening noise: a cheap hall.  Two channels for width."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    noise = rng.standard_normal((n, 2))
    bright = noise * np.exp(-t * 6.9 / (0.35 * seconds))[:, None]
    dark = _lowpass(noise, 3500.0) * np.exp(-t * 6.9 / seconds)[:, None]
    ir = 0.4 * bright + dark
    ir[: int(0.012 * SAMPLE_RATE)] = 0.0  # pre-delay
    return np.asarray(ir / np.sqrt((ir**2).sum(axis=0)), dtype=np.float64)


def render(mood: MusicMood, duration: float, seed: int) -> NDArray[np.float32]:
    """The whole bed as float32 stereo, exactly round(duration * 48000) samples."""
    if mood not in MOODS:
        raise ValueError(f"unknown music mood {mood!r}; moods are {', '.join(MUSIC_MOODS)}")
    if not (duration > 0 and math.isfinite(duration)):
        raise ValueError(f"music duration must be positive and finite, got {duration}")
    spec = MOODS[mood]
    # The mood is mixed into the seed so that moods do not share melodies.
    rng = np.random.default_rng([seed % 2**64, MUSIC_MOODS.index(mood)])
    progression = spec.progressions[int(rng.integers(len(spec.progressions)))]
    figure = _ARP_FIGURES[int(rng.integers(len(_ARP_FIGURES)))]
    renderer = _Renderer(spec, rng, progression, figure, _make_kit(rng))
    section_len = renderer.at(BARS_PER_SECTION * STEPS_PER_BAR)
    ir = _reverb_ir(spec.reverb_seconds, rng)
    sections = renderer.sections(section_len, ir)
    # verse, chorus, chorus, verse, ...: the melody is heard two thirds of the time
    pattern = (0, 1, 1)

    # Assembled in float32: five minutes of stereo in float64 would be 230 MB.
    parts = [sec.astype(np.float32) for sec in sections]
    total = round(duration * SAMPLE_RATE)
    out = np.zeros((total, 2), dtype=np.float32)
    for i, start in enumerate(range(0, total, section_len)):
        sec = parts[pattern[i % len(pattern)]]
        take = min(sec.shape[0], total - start)
        out[start : start + take] += sec[:take]

    fade_in = min(int(0.5 * SAMPLE_RATE), total // 4)
    fade_out = min(int(2.0 * SAMPLE_RATE), total // 4)
    if fade_in:
        out[:fade_in] *= np.linspace(0.0, 1.0, fade_in, dtype=np.float32)[:, None]
    if fade_out:
        ramp = np.linspace(1.0, 0.0, fade_out, dtype=np.float32) ** 2
        out[total - fade_out :] *= ramp[:, None]
    peak = float(np.abs(out).max())
    if peak > 0:
        out *= np.float32(10.0 ** (PEAK_DBFS / 20.0) / peak)
    return out


class SynthComposer:
    """Composer backend: procedural, seeded, offline music in six moods."""

    name: str = "synth"
    version: str = "1"

    def compose(self, mood: MusicMood, duration: float, seed: int, out: Path) -> None:
        """Write a 48 kHz stereo 16-bit WAV of exactly `duration` seconds (rounded to a sample)."""
        write_wav(out, render(mood, duration, seed), SAMPLE_RATE)
