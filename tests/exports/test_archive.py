"""The streamed ZIP: readable by zipfile and unzip, every byte range equal to
the same slice of the whole, ZIP64 where sizes or offsets need it (beyond
4 GiB, checked on a virtual member that is never materialised)."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiprod.exports.archive import ZIP64_LIMIT, Member, ZipLayout, dos_time

WHEN = datetime(2026, 5, 17, 10, 30, 44, tzinfo=UTC)


def _members(crc_known: bool = True) -> list[Member]:
    payload = bytes(range(256)) * 300
    big = Member.of_bytes("aiprod-1/video.mp4", payload)
    if not crc_known:  # as an artifact stored before workers recorded CRCs
        big = Member(big.name, big.size, big.read, big.digest)
    return [
        Member.of_bytes("aiprod-1/production.json", b'{"a": 1}\n'),
        big,
        Member.of_bytes("aiprod-1/thumbs/thumb_000.jpg", b"\xff\xd8\xff" + b"x" * 50),
        Member.of_bytes("aiprod-1/empty.txt", b""),
        Member.of_bytes("aiprod-1/légende.srt", "1\nÉté\n".encode()),
    ]


async def _all(layout: ZipLayout, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in layout.stream(start, end)])


@pytest.mark.parametrize("limit", [ZIP64_LIMIT, 0], ids=["classic", "zip64"])
async def test_the_archive_reads_back_with_zipfile_and_unzip(limit: int, tmp_path: Path) -> None:
    members = _members(crc_known=False)
    layout = ZipLayout(members, WHEN, limit)
    data = await _all(layout)
    assert len(data) == layout.size
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None  # every CRC checked
        assert [i.filename for i in z.infolist()] == [m.name for m in members]
        for m, info in zip(members, z.infolist(), strict=True):
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.file_size == m.size
            assert info.date_time == (2026, 5, 17, 10, 30, 44)
            assert b"".join([c async for c in m.read(0, m.size)]) == z.read(info)
            assert info.external_attr >> 16 == 0o100644
    if shutil.which("unzip"):
        (tmp_path / "a.zip").write_bytes(data)
        out = subprocess.run(["unzip", "-t", str(tmp_path / "a.zip")], capture_output=True)
        assert out.returncode == 0, out.stdout + out.stderr


async def test_every_range_is_the_same_slice_of_the_whole() -> None:
    layout = ZipLayout(_members(), WHEN)
    whole = await _all(layout)
    for start in range(0, layout.size, 97):
        for length in (1, 30, 1000, 70_000):
            assert await _all(layout, start, start + length) == whole[start : start + length]
    assert await _all(ZipLayout(_members(), WHEN)) == whole  # deterministic


async def test_the_etag_follows_the_content() -> None:
    a, b = ZipLayout(_members(), WHEN), ZipLayout(_members(crc_known=False), WHEN)
    assert a.etag == b.etag  # a known or computed CRC changes no byte
    changed = _members()
    changed[0] = Member.of_bytes(changed[0].name, b'{"a": 2}\n')
    assert ZipLayout(changed, WHEN).etag != a.etag
    assert ZipLayout(_members(), datetime(2027, 1, 1, tzinfo=UTC)).etag != a.etag


async def test_a_member_that_changed_size_aborts_the_stream() -> None:
    async def short(start: int, end: int) -> AsyncIterator[bytes]:
        yield b"x" * max(0, min(end, 10) - start)

    layout = ZipLayout([Member("a.bin", 100, short, "d", crc32=0)], WHEN)
    with pytest.raises(OSError, match="expected"):
        await _all(layout)


class _Sparse(io.RawIOBase):
    """A seekable file of `size` bytes that holds `tail` at its end and zeros
    elsewhere: enough for zipfile to read an archive's directory."""

    def __init__(self, size: int, tail: bytes) -> None:
        self.size, self.tail, self.pos = size, tail, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = [offset, self.pos + offset, self.size + offset][whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n < 0 else min(self.size, self.pos + n)
        start_tail = self.size - len(self.tail)
        out = bytearray(max(0, end - self.pos))
        for i in range(max(self.pos, start_tail), end):
            out[i - self.pos] = self.tail[i - start_tail]
        self.pos = end
        return bytes(out)


async def test_members_beyond_4_gib_get_zip64_fields() -> None:
    """A 5 GiB member, never materialised: the directory zipfile reads names its
    true size and the next member's offset beyond 4 GiB."""
    huge = 5 << 30

    async def zeros(start: int, end: int) -> AsyncIterator[bytes]:
        yield bytes(min(end - start, 16))  # never read in full here

    members = [
        Member.of_bytes("first.txt", b"first"),
        Member("huge.bin", huge, zeros, "zeros", crc32=0x12345678),
        Member.of_bytes("after.txt", b"after"),
    ]
    layout = ZipLayout(members, WHEN)
    assert layout.size > huge
    tail = await _all(layout, layout.central_offset)
    with zipfile.ZipFile(_Sparse(layout.size, tail)) as z:
        infos = {i.filename: i for i in z.infolist()}
    assert infos["huge.bin"].file_size == huge
    assert infos["huge.bin"].CRC == 0x12345678
    assert infos["after.txt"].header_offset == layout.offsets[2] > ZIP64_LIMIT
    # The member after the big one: its local header, read at its offset, is right.
    start = layout.offsets[2]
    header = await _all(layout, start, start + 30 + len("after.txt") + 5)
    assert header[:4] == b"PK\x03\x04"
    assert header[30:39] == b"after.txt" and header[39:] == b"after"
    assert int.from_bytes(header[14:18], "little") == zlib.crc32(b"after")


def test_dos_times_clamp_to_1980() -> None:
    assert dos_time(datetime(1970, 1, 1, tzinfo=UTC)) == (0, (1 << 5) | 1)
    t, d = dos_time(WHEN)
    assert (d >> 9) + 1980 == 2026 and (t >> 11) == 10


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        ZipLayout([Member.of_bytes("a", b"1"), Member.of_bytes("a", b"2")], WHEN)
