"""A streamed ZIP whose every byte is known before the first is sent.

Why not zipfile, stream-zip or zipstream-ng: they compute each member's CRC
while writing it and put it after the data (a data descriptor), so the bytes
at a given offset are known only to whoever streamed everything before it.
Here members are *stored* (no compression: videos and pictures do not shrink)
and their sizes and CRC-32s go in the local headers, so:

* the archive's length is the sum of known sizes, computed up front: the
  size limit answers 413 before streaming and `Content-Length` is exact;
* any byte range can be produced on its own (`Range`, resumed downloads),
  and the same members give the same bytes on every request (fixed order,
  one timestamp), which a strong `ETag` of their content names;
* memory stays constant: headers are a few hundred bytes and file data is
  copied from storage a chunk at a time.

ZIP64 (APPNOTE 6.3.9 §4.3.14, §4.5.3) is used where a size, an offset or the
member count does not fit the classic fields: a member of 4 GiB or more, or
one starting beyond 4 GiB, carries a ZIP64 extra field, and the end records
gain a ZIP64 end of central directory and its locator.  Names are UTF-8
(general-purpose flag bit 11).  A member's CRC may be given (workers record
it with each artifact) or is computed by reading the member once before its
header is sent.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

ZIP64_LIMIT = 0xFFFFFFFF
"""Sizes and offsets from here on need ZIP64 fields."""
COUNT_LIMIT = 0xFFFF

_LOCAL = 0x04034B50
_CENTRAL = 0x02014B50
_END = 0x06054B50
_END64 = 0x06064B50
_LOCATOR64 = 0x07064B50
_UTF8 = 0x0800
_UNIX = 3 << 8
_FILE_MODE = 0o100644 << 16

Reader = Callable[[int, int], AsyncIterator[bytes]]
"""Bytes ``[start, end)`` of a member's content, in chunks."""


@dataclass(frozen=True)
class Member:
    """One file of the archive."""

    name: str
    size: int
    read: Reader
    digest: str
    """What identifies the content (its SHA-256): the archive's ETag is built from these."""
    crc32: int | None = None

    @classmethod
    def of_bytes(cls, name: str, data: bytes) -> Member:
        async def read(start: int, end: int) -> AsyncIterator[bytes]:
            yield data[start:end]

        return cls(name, len(data), read, hashlib.sha256(data).hexdigest(), zlib.crc32(data))


def dos_time(when: datetime) -> tuple[int, int]:
    """(time, date) in MS-DOS format; dates before 1980 are clamped to it."""
    if when.year < 1980:
        return 0, (1 << 5) | 1
    t = (when.hour << 11) | (when.minute << 5) | (when.second // 2)
    d = ((min(when.year, 2107) - 1980) << 9) | (when.month << 5) | when.day
    return t, d


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str  # "header", "data", "tail"
    index: int


class ZipLayout:
    """Where every byte of an archive of `members` comes from.

    `limit` is where ZIP64 fields start (the format's 0xFFFFFFFF; tests lower
    it to exercise the ZIP64 records without writing 4 GiB)."""

    def __init__(self, members: list[Member], modified: datetime, limit: int = ZIP64_LIMIT):
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ValueError("duplicate member names")
        self.members = members
        self.limit = limit
        self.time, self.date = dos_time(modified)
        self._crc: dict[int, int] = {
            i: m.crc32 for i, m in enumerate(members) if m.crc32 is not None
        }
        self.offsets: list[int] = []
        spans: list[_Span] = []
        pos = 0
        for i, m in enumerate(members):
            self.offsets.append(pos)
            head = 30 + len(m.name.encode()) + (20 if self._big(m.size) else 0)
            spans.append(_Span(pos, pos + head, "header", i))
            pos += head
            spans.append(_Span(pos, pos + m.size, "data", i))
            pos += m.size
        self.central_offset = pos
        self.central_size = sum(self._central_length(i) for i in range(len(members)))
        tail = self.central_size + (56 + 20 if self._zip64_end() else 0) + 22
        spans.append(_Span(pos, pos + tail, "tail", -1))
        self.size = pos + tail
        self.spans = [s for s in spans if s.end > s.start]

    # ------------------------------------------------------------------ sizes

    def _big(self, value: int) -> bool:
        return value >= self.limit

    def _central_extra(self, i: int) -> list[int]:
        """The ZIP64 extra's values for member `i`'s central header, in order."""
        m = self.members[i]
        values = [m.size, m.size] if self._big(m.size) else []
        if self._big(self.offsets[i]):
            values.append(self.offsets[i])
        return values

    def _central_length(self, i: int) -> int:
        extra = self._central_extra(i)
        return 46 + len(self.members[i].name.encode()) + (4 + 8 * len(extra) if extra else 0)

    def _zip64_end(self) -> bool:
        return (
            len(self.members) >= COUNT_LIMIT
            or self._big(self.central_offset)
            or self._big(self.central_size)
        )

    @property
    def etag(self) -> str:
        """Names, sizes, contents and the timestamp: equal tags, equal bytes."""
        h = hashlib.sha256(b"aiprod-zip-1\n")
        h.update(f"{self.time}:{self.date}:{self.limit}\n".encode())
        for m in self.members:
            h.update(f"{m.name}\0{m.size}\0{m.digest}\n".encode())
        return h.hexdigest()

    # ---------------------------------------------------------------- headers

    async def crc(self, i: int) -> int:
        """Member `i`'s CRC-32, read from its content the first time it is needed."""
        if i not in self._crc:
            m, crc, seen = self.members[i], 0, 0
            async for chunk in m.read(0, m.size):
                crc = zlib.crc32(chunk, crc)
                seen += len(chunk)
            if seen != m.size:
                raise OSError(f"{m.name}: read {seen} bytes, expected {m.size}")
            self._crc[i] = crc
        return self._crc[i]

    def _version(self, zip64: bool) -> int:
        return 45 if zip64 else 20

    async def _local_header(self, i: int) -> bytes:
        m = self.members[i]
        name = m.name.encode()
        big = self._big(m.size)
        extra = struct.pack("<HHQQ", 1, 16, m.size, m.size) if big else b""
        size32 = ZIP64_LIMIT if big else m.size
        return (
            struct.pack(
                "<IHHHHHIIIHH",
                _LOCAL,
                self._version(big),
                _UTF8,
                0,  # stored
                self.time,
                self.date,
                await self.crc(i),
                size32,
                size32,
                len(name),
                len(extra),
            )
            + name
            + extra
        )

    async def _central_header(self, i: int) -> bytes:
        m = self.members[i]
        name = m.name.encode()
        values = self._central_extra(i)
        extra = struct.pack(f"<HH{len(values)}Q", 1, 8 * len(values), *values) if values else b""
        size32 = ZIP64_LIMIT if self._big(m.size) else m.size
        offset32 = ZIP64_LIMIT if self._big(self.offsets[i]) else self.offsets[i]
        version = self._version(bool(values))
        return (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                _CENTRAL,
                _UNIX | version,
                version,
                _UTF8,
                0,
                self.time,
                self.date,
                await self.crc(i),
                size32,
                size32,
                len(name),
                len(extra),
                0,  # comment
                0,  # disk
                0,  # internal attributes
                _FILE_MODE,
                offset32,
            )
            + name
            + extra
        )

    async def _tail(self) -> bytes:
        parts = [await self._central_header(i) for i in range(len(self.members))]
        count, cd_size, cd_offset = len(self.members), self.central_size, self.central_offset
        if self._zip64_end():
            end64 = self.central_offset + self.central_size
            parts.append(
                struct.pack(
                    "<IQHHIIQQQQ",
                    _END64,
                    44,
                    _UNIX | 45,
                    45,
                    0,
                    0,
                    count,
                    count,
                    cd_size,
                    cd_offset,
                )
            )
            parts.append(struct.pack("<IIQI", _LOCATOR64, 0, end64, 1))
        parts.append(
            struct.pack(
                "<IHHHHIIH",
                _END,
                0,
                0,
                min(count, COUNT_LIMIT),
                min(count, COUNT_LIMIT),
                ZIP64_LIMIT if self._big(cd_size) else cd_size,
                ZIP64_LIMIT if self._big(cd_offset) else cd_offset,
                0,
            )
        )
        return b"".join(parts)

    # -------------------------------------------------------------- streaming

    async def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of the archive (all of it by default)."""
        end = self.size if end is None else min(end, self.size)
        for span in self.spans:
            if span.end <= start or span.start >= end:
                continue
            a, b = max(start, span.start) - span.start, min(end, span.end) - span.start
            if span.kind == "header":
                yield (await self._local_header(span.index))[a:b]
            elif span.kind == "tail":
                yield (await self._tail())[a:b]
            else:
                m, sent = self.members[span.index], 0
                async for chunk in m.read(a, b):
                    sent += len(chunk)
                    yield chunk
                if sent != b - a:  # the stored file changed size: never send a wrong archive
                    raise OSError(f"{m.name}: read {sent} bytes, expected {b - a}")


__all__ = ["COUNT_LIMIT", "ZIP64_LIMIT", "Member", "ZipLayout", "dos_time"]
