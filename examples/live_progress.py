"""Submit a production and print its live progress over the WebSocket.

    python examples/live_progress.py --base http://127.0.0.1:8000 \\
        --email admin@localhost --password '…' "How honeybees make honey"

Logs in (or takes ``--token``), submits, then follows
``/v1/productions/{id}/ws``, authenticating with a one-time ticket so that no
long-lived token ever appears in a URL.  If the connection drops it
reconnects with the last sequence number it saw and so gets exactly the
events it missed.  Needs ``httpx`` and ``websockets``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import httpx
import websockets

FINAL = {"job.completed", "job.failed", "job.cancelled"}


def login(http: httpx.Client, email: str, password: str) -> str:
    r = http.post("/v1/auth/login", json={"email": email, "password": password})
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


def describe(msg: dict[str, Any]) -> str:
    data = msg.get("data", {})
    kind = str(msg["type"])
    if kind == "stage.progress":
        eta = data.get("eta_seconds")
        left = f", ~{eta:.0f}s left" if eta is not None else ""
        return f"{data['stage']:>8} {data['value'] / data['total']:6.1%}{left}"
    if kind in ("stage.started", "stage.completed"):
        extra = f" ({', '.join(data['artifacts'])})" if data.get("artifacts") else ""
        return f"{data['stage']:>8} {kind.split('.')[1]}{extra}"
    if kind == "job.failed":
        return f"failed: {data['error']['code']}: {data['error']['message']}"
    if kind == "job.completed":
        return f"completed: {', '.join(data['artifacts'])}"
    return kind


async def follow(base: str, http: httpx.Client, job_id: str) -> str:
    """Print events until the job is finished; returns the final event type."""
    ws_base = base.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    last = 0
    while True:
        ticket = http.post("/v1/ws-ticket").json()["ticket"]
        url = f"{ws_base}/v1/productions/{job_id}/ws?ticket={ticket}&after={last}"
        try:
            async with websockets.connect(url) as ws:
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "error":
                        raise SystemExit(f"refused: {msg['code']}: {msg['message']}")
                    if msg["type"] == "resync":
                        print("  (fell behind; catching up)", flush=True)
                    if "seq" not in msg:
                        continue  # subscribed, heartbeat
                    last = msg["seq"]
                    print(f"[{msg['seq']:3d}] {msg['progress']:3d}%  {describe(msg)}", flush=True)
                    if msg["type"] in FINAL:
                        return str(msg["type"])
        except (websockets.ConnectionClosedError, OSError) as exc:
            print(f"  (connection lost: {exc}; resuming after {last})", flush=True)
            await asyncio.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prompt", nargs="?", default="How honeybees turn nectar into honey")
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--email")
    parser.add_argument("--password")
    parser.add_argument("--token", help="An access token or API key instead of a login.")
    parser.add_argument("--body", help="A JSON ProductionRequest instead of the prompt.")
    args = parser.parse_args()
    with httpx.Client(base_url=args.base, timeout=30) as http:
        token = args.token or login(http, args.email, args.password)
        http.headers["Authorization"] = f"Bearer {token}"
        body = json.loads(args.body) if args.body else {"prompt": args.prompt}
        r = http.post("/v1/productions", json=body)
        if r.status_code != 202:
            print(r.text, file=sys.stderr)
            return 1
        job = r.json()["job"]
        print(f"submitted {job['id']} (estimate ${r.json()['estimate']['total']:.4f})")
        final = asyncio.run(follow(args.base, http, job["id"]))
    return 0 if final == "job.completed" else 1


if __name__ == "__main__":
    sys.exit(main())
