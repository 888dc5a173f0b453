"""`aiprod serve` stops on SIGTERM although clients hold event streams open:
SSE responses end, WebSockets are closed, the process exits cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.e2e.test_http import Server
from tests.events.conftest import free_port, recv, ws_connect
from websockets.exceptions import ConnectionClosed

PASSWORD = "a long enough shutdown password"


async def test_open_streams_do_not_hold_shutdown(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AIPROD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "AIPROD_DATA_DIR": str(tmp_path / "data"),
        "AIPROD_SECRET_KEY": "shutdown-test-signing-key-" + "s" * 32,
        "AIPROD_PORT": str(free_port()),
        "AIPROD_WORKERS": "0",
    }
    created = subprocess.run(
        [
            *(sys.executable, "-m", "aiprod.cli", "users", "create"),
            "s@example.com",
            "--password-stdin",
        ],
        input=f"{PASSWORD}\n".encode(),
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr.decode()
    server = Server(env, tmp_path / "server.log")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            r = await http.post(
                "/v1/auth/login", json={"email": "s@example.com", "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await http.post("/v1/productions", json={"prompt": "Bees"}, headers=headers)
            job_id = r.json()["job"]["id"]
            ws = await ws_connect(f"ws://127.0.0.1:{server.port}/v1/productions/{job_id}/ws")
            await ws.send(json.dumps({"type": "auth", "token": headers["Authorization"][7:]}))
            assert (await recv(ws))["type"] == "subscribed"
            async with http.stream(
                "GET", f"/v1/productions/{job_id}/events/stream", headers=headers
            ) as sse:
                assert sse.status_code == 200
                lines = sse.aiter_lines()
                while "job.queued" not in await asyncio.wait_for(anext(lines), 10):
                    pass
                assert server.proc is not None
                server.proc.send_signal(signal.SIGTERM)

                async def drain() -> None:
                    async for _ in lines:
                        pass

                await asyncio.wait_for(drain(), 30)  # the stream ends

            async def until_closed() -> None:
                while True:
                    await asyncio.wait_for(ws.recv(), 30)

            with pytest.raises(ConnectionClosed) as closed:
                await until_closed()
            assert closed.value.rcvd is not None and closed.value.rcvd.code in (1001, 1012)
        code = await asyncio.to_thread(server.proc.wait, 30)
        # uvicorn re-raises the signal it handled once it has shut down cleanly.
        assert code in (0, -signal.SIGTERM), server.output()
        assert "Application shutdown complete" in server.output()
    finally:
        server.stop(signal.SIGKILL)
