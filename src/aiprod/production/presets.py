"""Presets: named bundles of defaults, caps and a quality tier."""

from __future__ import annotations

from dataclasses import dataclass

from aiprod.production.models import QualityTier


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    default_duration: float
    max_duration: float
    quality: QualityTier
    resolutions: tuple[str, ...]
    max_scenes: int


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "quick_social",
            "Short vertical-friendly clip, fastest encode.",
            default_duration=20,
            max_duration=60,
            quality="draft",
            resolutions=("480p", "720p", "1080p"),
            max_scenes=6,
        ),
        Preset(
            "brand_campaign",
            "Balanced quality for campaigns and explainers.",
            default_duration=45,
            max_duration=120,
            quality="standard",
            resolutions=("480p", "720p", "1080p"),
            max_scenes=16,
        ),
        Preset(
            "premium_spot",
            "Highest encode quality, long form.",
            default_duration=60,
            max_duration=300,
            quality="premium",
            resolutions=("720p", "1080p"),
            max_scenes=40,
        ),
    )
}
