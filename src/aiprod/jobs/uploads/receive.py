"""Receive one multipart upload into a scratch file, never whole in memory.

The body is read as it arrives and fed to python-multipart's streaming parser:
the file part goes to disk chunk by chunk (hashed on the way), the only other
field (`license`) is kept if short, and the upload stops with 413
``too_large`` as soon as the file passes the cap, whether or not the client
sent a ``Content-Length``.  The first bytes are kept for sniffing.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from aiprod.errors import AppError, Invalid, TooLarge
from aiprod.jobs.uploads.formats import ACCEPTED, HEAD_BYTES

FIELD_MAX = 1024  # bytes of a text field (the licence is at most 200 characters)
OVERHEAD = 64 * 1024  # multipart framing and the licence field, on top of the file cap
LICENSE_MAX = 200
FILENAME_MAX = 255


class UnsupportedMediaType(AppError):
    status = 415
    default_code = "unsupported_media_type"


def too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the upload exceeds the limit of {limit} bytes",
        "too_large",
        details={"limit_bytes": limit},
        headers={"Connection": "close"},
    )


@dataclass
class Received:
    path: Path
    size: int = 0
    head: bytes = b""
    filename: str = ""
    license: str | None = None
    digest: Any = field(default_factory=hashlib.sha256)

    @property
    def sha256(self) -> str:
        return str(self.digest.hexdigest())


_UNSAFE = re.compile(r"[^\w .()+,=@-]")


def display_name(raw: str) -> str:
    """The client's file name, for display only: its last segment, normalised,
    with control and unusual characters replaced; never used as a path."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE.sub("_", name).strip(" .")
    return name[:FILENAME_MAX] or "upload"


def _invalid(message: str, loc: str = "body") -> Invalid:
    return Invalid.at(["body", loc] if loc != "body" else ["body"], message, "invalid_upload")


class _Parts:
    """python-multipart callbacks, collected for the async loop to act on."""

    def __init__(self) -> None:
        self.header_name = b""
        self.header_value = b""
        self.disposition = b""
        self.name = ""
        self.is_file = False
        self.filename = ""
        self.text = bytearray()
        self.fields: dict[str, str] = {}
        self.files = 0
        self.file_chunks: list[bytes] = []

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.disposition, self.name, self.is_file, self.text = b"", "", False, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        if self.name == "file":
            if b"filename" not in options:
                raise _invalid("`file` must be a file part (with a filename)", "file")
            self.files += 1
            if self.files > 1:
                raise _invalid("one file per upload", "file")
            self.is_file = True
            self.filename = options[b"filename"].decode("utf-8", "replace")
        elif self.name == "license":
            if b"filename" in options:
                raise _invalid("`license` is a text field", "license")
        else:
            raise _invalid(f"unknown form field {self.name[:40]!r}: send `file` and `license`")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.is_file:
            self.file_chunks.append(data[start:end])
            return
        self.text += data[start:end]
        if len(self.text) > FIELD_MAX:
            raise _invalid(f"`{self.name}` is too long", self.name)

    def on_part_end(self) -> None:
        if not self.is_file:
            if self.name in self.fields:
                raise _invalid(f"`{self.name}` is given twice", self.name)
            self.fields[self.name] = self.text.decode("utf-8", "replace")


def _write(f: BinaryIO, received: Received, chunks: list[bytes]) -> None:
    for chunk in chunks:
        f.write(chunk)
        received.digest.update(chunk)


async def receive(request: Request, dest: Path, max_bytes: int) -> Received:
    """Stream the request's multipart body; the file part lands at `dest`.
    415 for a body that is not multipart/form-data, 413 ``too_large`` past
    `max_bytes`, 422 for a malformed form or a missing file."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise UnsupportedMediaType(
            "send the file as multipart/form-data (field `file`, optional `license`)"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + OVERHEAD:
        raise too_large(max_bytes)
    parts = _Parts()
    parser = MultipartParser(params[b"boundary"], parts.callbacks())
    received = Received(dest)
    body = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as f:
        try:
            async for chunk in request.stream():
                body += len(chunk)
                if body > max_bytes + OVERHEAD:
                    raise too_large(max_bytes)
                parser.write(chunk)
                chunks, parts.file_chunks = parts.file_chunks, []
                if not chunks:
                    continue
                size = sum(len(c) for c in chunks)
                if received.size + size > max_bytes:
                    raise too_large(max_bytes)
                if len(received.head) < HEAD_BYTES:
                    received.head = (received.head + b"".join(chunks))[:HEAD_BYTES]
                received.size += size
                await asyncio.to_thread(_write, f, received, chunks)
            parser.finalize()
        except FormParserError:
            raise _invalid("the multipart body is malformed") from None
    if parts.files == 0:
        raise Invalid.at(["body", "file"], "no file: send it in the field `file`", "missing")
    if received.size == 0:
        raise UnsupportedMediaType(f"the file is empty; accepted: {ACCEPTED}")
    received.filename = display_name(parts.filename)
    lic = parts.fields.get("license")
    if lic is not None:
        lic = lic.strip()
        if not lic or len(lic) > LICENSE_MAX or any(unicodedata.category(c)[0] == "C" for c in lic):
            raise Invalid.at(
                ["body", "license"],
                f"`license` is 1 to {LICENSE_MAX} printable characters",
                "invalid_license",
            )
    received.license = lic
    return received


__all__ = ["OVERHEAD", "Received", "UnsupportedMediaType", "display_name", "receive", "too_large"]
