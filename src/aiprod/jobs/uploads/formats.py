"""What an upload is, from its first bytes: the filename and the Content-Type a
client sends are never believed.

Only the formats listed here are accepted (images: PNG, JPEG, WebP; video:
MP4, MOV, WebM, Matroska; audio: WAV, MP3, AAC/M4A, Ogg (Vorbis or Opus),
FLAC).  Containers that may carry video or audio (MP4/MOV, WebM/Matroska) are
decided by ``inspect``: with a video stream the upload is a video, with only
audio it is audio.  Each family names the one FFmpeg demuxer allowed to read
it, so FFmpeg's own probing (which knows playlists that name other files)
never runs on user bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["image", "av", "audio"]
Kind = Literal["image", "video", "audio"]

HEAD_BYTES = 64
"""How many leading bytes `sniff` needs."""


@dataclass(frozen=True)
class Sniffed:
    family: Family
    content_type: str
    """For `av` families, the type as a video; `audio_type` when it holds only audio."""
    demuxer: str | None
    """The FFmpeg demuxer to open it with (None: an image, read by Pillow)."""
    audio_type: str | None = None


def _mp3_sync(head: bytes) -> bool:
    """An MPEG audio layer III frame header (0xFFE, layer bits 01)."""
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 == 0x02


def _adts_sync(head: bytes) -> bool:
    """An AAC ADTS frame header (0xFFF, layer bits 00)."""
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0


_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip")


def sniff(head: bytes) -> Sniffed | None:
    """The format of a file starting with `head` (at least `HEAD_BYTES` when
    the file is that long); None for anything not accepted."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png", None)
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg", None)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "image/webp", None)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("audio", "audio/wav", "wav")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return Sniffed("audio", "audio/mp4", "mov,mp4,m4a,3gp,3g2,mj2")
        video = "video/quicktime" if brand == b"qt  " else "video/mp4"
        return Sniffed("av", video, "mov,mp4,m4a,3gp,3g2,mj2", "audio/mp4")
    if head[4:8] in _QUICKTIME_ATOMS:
        return Sniffed("av", "video/quicktime", "mov,mp4,m4a,3gp,3g2,mj2", "audio/mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska or WebM
        if b"webm" in head:
            return Sniffed("av", "video/webm", "matroska,webm", "audio/webm")
        return Sniffed("av", "video/x-matroska", "matroska,webm", "audio/x-matroska")
    if head.startswith(b"OggS"):
        return Sniffed("audio", "audio/ogg", "ogg")
    if head.startswith(b"fLaC"):
        return Sniffed("audio", "audio/flac", "flac")
    if head.startswith(b"ID3") or _mp3_sync(head):
        return Sniffed("audio", "audio/mpeg", "mp3")
    if _adts_sync(head):
        return Sniffed("audio", "audio/aac", "aac")
    return None


SUFFIXES: dict[str, str] = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "video/x-matroska": ".mkv",
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/aac": ".aac",
    "audio/mp4": ".m4a",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
    "audio/webm": ".webm",
    "audio/x-matroska": ".mka",
}
"""The file suffix a stored upload gets, by content type (what the engine's
``UserMedia.kind`` and FFmpeg go by)."""

ACCEPTED = (
    "images: PNG, JPEG, WebP; video: MP4, MOV, WebM, MKV; "
    "audio: WAV, MP3, AAC/M4A, Ogg (Vorbis, Opus), FLAC"
)

__all__ = ["ACCEPTED", "HEAD_BYTES", "SUFFIXES", "Family", "Kind", "Sniffed", "sniff"]
