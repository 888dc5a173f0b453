"""The load mix of bench/load.py for people who use Locust.

    pip install locust
    AIPROD_EMAIL=admin@localhost AIPROD_PASSWORD=… locust -f deploy/load/locustfile.py \
        --host http://127.0.0.1:8000 --users 256 --spawn-rate 50

Each simulated user signs in once (a bearer token), then reads and writes in
the proportions of bench/load.py: list with filters 20, get one 25, events
after a sequence 15, cost estimate 10, create 5, artifact HEAD 10, artifact
Range 15.  Creates stay queued unless workers run; run the server with
`AIPROD_WORKERS=0` (and `aiprod worker` elsewhere, or none) to measure the
API alone.  bench/load.py (wrk) is the reference: it measures more requests
per second than Locust's Python clients can send from the same two cores.
"""

from __future__ import annotations

import os
import random

from locust import HttpUser, between, task


class Producer(HttpUser):
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        r = self.client.post(
            "/v1/auth/login",
            json={"email": os.environ["AIPROD_EMAIL"], "password": os.environ["AIPROD_PASSWORD"]},
        )
        self.client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        listing = self.client.get("/v1/productions?limit=50").json()["items"]
        if not listing:
            listing = [
                self.client.post("/v1/productions", json={"prompt": "Bees in spring"}).json()["job"]
            ]
        self.ids = [j["id"] for j in listing]
        done = [j["id"] for j in listing if j["status"] == "completed"]
        self.rendered = done[0] if done else None

    @task(20)
    def search(self) -> None:
        self.client.get("/v1/productions?status=queued&limit=20&q=honeybees", name="list")

    @task(25)
    def get_one(self) -> None:
        self.client.get(f"/v1/productions/{random.choice(self.ids)}", name="get")

    @task(15)
    def events(self) -> None:
        self.client.get(f"/v1/productions/{random.choice(self.ids)}/events?after=1", name="events")

    @task(10)
    def estimate(self) -> None:
        self.client.post("/v1/cost-estimate", json={"prompt": "A film about bees", "duration": 20})

    @task(5)
    def create(self) -> None:
        self.client.post("/v1/productions", json={"prompt": "A film about bees", "duration": 5})

    @task(10)
    def head(self) -> None:
        if self.rendered:
            self.client.head(f"/v1/productions/{self.rendered}/artifacts/video.mp4", name="head")

    @task(15)
    def range(self) -> None:
        if self.rendered:
            self.client.get(
                f"/v1/productions/{self.rendered}/artifacts/video.mp4",
                headers={"Range": "bytes=0-65535"},
                name="range",
            )
