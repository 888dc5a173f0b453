"""Artifact storage on a local folder and on an S3-compatible server (moto's,
run as a real HTTP server by the test), through the same obstore code."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from aiprod.storage.store import ArtifactNotFound, Storage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        pytest.fail("moto_server is missing: install the dev extra (moto[server])")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(url, timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("moto_server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Storage]:
    if request.param == "local":
        yield Storage(str(tmp_path / "artifacts"))
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(key, value)
    bucket = f"b{os.getpid()}{time.monotonic_ns() % 10**9}"
    assert httpx.put(f"{endpoint}/{bucket}").status_code == 200
    yield Storage(f"s3://{bucket}/aiprod")


async def test_roundtrip_range_and_delete(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "video.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)  # crosses the 1 MiB chunk size
    src.write_bytes(data)
    await storage.put_file("jobs/1/video.mp4", src)
    await storage.put_bytes("jobs/1/qa.json", b"{}")
    await storage.put_bytes("jobs/2/qa.json", b"{}")
    assert await storage.size("jobs/1/video.mp4") == len(data)
    parts = [c async for c in storage.stream("jobs/1/video.mp4", 1000, 2 * 1024 * 1024 + 5)]
    assert b"".join(parts) == data[1000 : 2 * 1024 * 1024 + 5]
    assert len(parts) == 2
    out = tmp_path / "down" / "v.mp4"
    await storage.get_to_file("jobs/1/video.mp4", out)
    assert out.read_bytes() == data
    assert await storage.get_bytes("jobs/1/qa.json") == b"{}"
    assert await storage.delete_prefix("jobs/1/") == 2
    with pytest.raises(ArtifactNotFound):
        await storage.size("jobs/1/video.mp4")
    assert await storage.get_bytes("jobs/2/qa.json") == b"{}"  # other jobs untouched
    await storage.check()


async def test_missing_objects_raise_artifact_not_found(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound):
        await storage.get_bytes("jobs/none/x")
    with pytest.raises(ArtifactNotFound):
        await storage.get_to_file("jobs/none/x", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ArtifactNotFound):
        _ = [c async for c in storage.stream("jobs/none/x", 0, 10)]


async def test_s3_url_prefix_is_honoured(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(key, value)
    assert httpx.put(f"{s3_endpoint}/prefixed").status_code == 200
    await Storage("s3://prefixed/tenant-a").put_bytes("jobs/1/x", b"hello")
    listing = httpx.get(f"{s3_endpoint}/prefixed", params={"list-type": "2"}).text
    assert "<Key>tenant-a/jobs/1/x</Key>" in listing
