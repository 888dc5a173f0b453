"""Artifact storage on obstore.

Keys are opaque paths such as ``jobs/<uuid>/video.mp4``.  Nothing is served by
path from here: the API checks ownership and streams bytes (with Range
support), so storage never needs to be public.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import obstore
from obstore.store import LocalStore, from_url

from aiprod.private_files import private_dir

CHUNK = 1 << 20


class ArtifactNotFound(Exception):
    pass


class StoredObject(NamedTuple):
    key: str
    size: int
    modified: datetime


class Storage:
    def __init__(self, url: str) -> None:
        self.url = url
        if "://" not in url or url.startswith("file://"):
            root = Path(url.removeprefix("file://")).expanduser().resolve()
            private_dir(root)  # users' videos: not for other accounts on this host
            self.store: Any = LocalStore(prefix=root, mkdir=True)
        else:
            self.store = from_url(url)

    async def put_file(self, key: str, path: Path) -> None:
        await obstore.put_async(self.store, key, path)

    async def put_bytes(self, key: str, data: bytes) -> None:
        await obstore.put_async(self.store, key, data)

    async def get_to_file(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        try:
            result = await obstore.get_async(self.store, key)
        except FileNotFoundError as exc:
            raise ArtifactNotFound(key) from exc
        with tmp.open("wb") as f:
            async for chunk in result.stream(min_chunk_size=CHUNK):
                f.write(chunk)
        tmp.replace(path)

    async def get_bytes(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self.store, key)
        except FileNotFoundError as exc:
            raise ArtifactNotFound(key) from exc
        return bytes(await result.bytes_async())

    async def size(self, key: str) -> int:
        try:
            meta = await obstore.head_async(self.store, key)
        except FileNotFoundError as exc:
            raise ArtifactNotFound(key) from exc
        return int(meta["size"])

    async def stream(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) in chunks, for Range responses."""
        pos = start
        while pos < end:
            stop = min(end, pos + CHUNK)
            try:
                data = await obstore.get_range_async(self.store, key, start=pos, end=stop)
            except FileNotFoundError as exc:
                raise ArtifactNotFound(key) from exc
            yield bytes(data)
            pos = stop

    async def delete(self, key: str) -> None:
        """Remove one object; a missing one is not an error."""
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self.store, key)

    async def delete_prefix(self, prefix: str) -> int:
        count = 0
        async for batch in obstore.list(self.store, prefix=prefix):
            paths = [m["path"] for m in batch]
            if paths:
                await obstore.delete_async(self.store, paths)
                count += len(paths)
        return count

    async def listing(self, prefix: str) -> list[StoredObject]:
        """Every object under `prefix` (one LIST request per thousand or so)."""
        found: list[StoredObject] = []
        async for batch in obstore.list(self.store, prefix=prefix):
            found += [StoredObject(m["path"], int(m["size"]), m["last_modified"]) for m in batch]
        return found

    async def check(self) -> None:
        """Round-trip a small object: proves the store is reachable and writable."""
        await obstore.put_async(self.store, ".health", b"ok")
        await obstore.head_async(self.store, ".health")
