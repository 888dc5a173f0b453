"""The example webhook receiver verifies what AIPROD sends and refuses forgeries."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook
from tests.events.conftest import free_port, make_settings, serve
from tests.events.helpers import play_job

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"


async def test_example_receiver_gets_verified_events(tmp_path: Path, sqlite_url: str) -> None:
    async with serve(make_settings(tmp_path, sqlite_url)) as live:
        _, headers = await live.account()
        port = free_port()
        r = await live.http.post(
            "/v1/webhooks",
            json={"url": f"http://127.0.0.1:{port}/", "event_types": ["*"]},
            headers=headers,
        )
        secret = r.json()["secret"]
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--port", str(port)],
            env={**os.environ, "AIPROD_WEBHOOK_SECRET": secret},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert "listening" in await asyncio.to_thread(proc.stdout.readline)
            job_id = await live.submit(headers)
            await play_job(live.jobs, job_id)
            log = await live.log(headers, job_id)
            lines: list[dict[str, object]] = []
            deadline = time.monotonic() + 30
            while len(lines) < len(log):  # deliveries overlap: any order
                assert time.monotonic() < deadline, lines
                lines.append(json.loads(await asyncio.to_thread(proc.stdout.readline)))
            assert sorted(int(str(x["seq"])) for x in lines) == [e["seq"] for e in log]
            assert {str(x["type"]) for x in lines} == {e["type"] for e in log}

            # Forged or altered messages are refused.
            body = json.dumps({"type": "job.completed", "timestamp": "x", "data": {}})
            good = Webhook(secret).sign("msg_forged", datetime.now(UTC), body)
            async with httpx.AsyncClient() as client:
                r = await client.post(
                    f"http://127.0.0.1:{port}/",
                    content=body + " ",
                    headers={
                        "webhook-id": "msg_forged",
                        "webhook-timestamp": str(int(time.time())),
                        "webhook-signature": good,
                    },
                )
            assert r.status_code == 401
        finally:
            proc.terminate()
            proc.wait(timeout=10)
