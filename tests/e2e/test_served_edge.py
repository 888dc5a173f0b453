"""`aiprod serve` as an operator starts it: a client on this very machine cannot
choose the address it is seen as (uvicorn's default trusts X-Forwarded-For from
127.0.0.1), and everything the server writes is private to its account."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_http import Server, free_port


def _serve(tmp_path: Path, **env: str) -> Server:
    srv = Server(
        {
            **os.environ,
            "AIPROD_DATA_DIR": str(tmp_path / "data"),
            "AIPROD_PORT": str(free_port()),
            "AIPROD_WORKERS": "0",
            "AIPROD_LOGIN_ADDRESS_FREE_FAILURES": "2",
            "AIPROD_LOGIN_ACCOUNT_FREE_FAILURES": "100",
            **env,
        },
        tmp_path / "server.log",
    )
    srv.start()
    return srv


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    old = os.umask(0o022)  # a usual shell's umask: the server must not inherit it
    try:
        srv = _serve(tmp_path)
    finally:
        os.umask(old)
    try:
        yield srv
    finally:
        srv.stop()


def _failed_logins(base: str, count: int) -> list[int]:
    """Failed logins, each for another account from another claimed address."""
    statuses = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(count):
            r = client.post(
                "/v1/auth/login",
                json={"email": f"guess{i}@example.com", "password": "wrong password"},
                headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
            )
            statuses.append(r.status_code)
    return statuses


def test_forwarded_for_from_a_local_peer_does_not_dodge_the_address_throttle(
    server: Server,
) -> None:
    # Two free failures per address; the third locks it (if the forged addresses
    # were believed, each would be a new address and all four would be 401).
    assert _failed_logins(server.base, 4) == [401, 401, 429, 429], server.output()


def test_served_files_are_private(server: Server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    modes = {str(p.relative_to(data)): stat.S_IMODE(p.stat().st_mode) for p in data.rglob("*")}
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert "aiprod.db" in modes
    assert {name: oct(m) for name, m in modes.items() if m & 0o077} == {}
