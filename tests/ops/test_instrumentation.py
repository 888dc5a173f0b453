"""The counters kept where the work happens, each driven by the real code:
the provider client and the meter (through the engine's telemetry hook),
the event bus's subscribers and fan-out, and a worker's stages."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from aiprod.db.engine import Database
from aiprod.events.bus import EventBus
from aiprod.events.envelope import Envelope
from aiprod.events.subscription import Subscription
from aiprod.ops import metrics
from aiprod.production import telemetry
from aiprod.production.cost import PriceTable
from aiprod.production.providers.client import ProviderClient, ProviderError
from aiprod.production.providers.metering import Meter
from aiprod.provider_config import ProviderConfig
from tests.conftest import base_settings
from tests.ops.conftest import Samples, parse, value


def now_samples() -> Samples:
    return parse(metrics.exposition().decode())


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform's recorder, as a worker installs it (restored after)."""
    monkeypatch.setattr(telemetry, "_recorder", None)
    metrics.install_engine_recorder()


def _client(responses: list[int]) -> ProviderClient:
    config = ProviderConfig(api_key="k" * 20, max_retries=1, retry_max_wait_seconds=0)  # type: ignore[arg-type]
    client = ProviderClient("testprov", config, "http://provider.test", sleep=lambda _: None)
    answers = iter(responses)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json={"error": {"message": "nope"}})

    client._http = httpx.Client(transport=httpx.MockTransport(answer))
    return client


def test_provider_calls_and_errors_are_counted(recorder: None) -> None:
    before = now_samples()
    ok = _client([503, 200])
    assert ok.request("speech", "POST", "audio/speech").status_code == 200
    bad = _client([400])
    with pytest.raises(ProviderError):
        bad.request("speech", "POST", "audio/speech")
    down = _client([500, 502])
    with pytest.raises(ProviderError):
        down.request("chat", "POST", "chat/completions")
    after = now_samples()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "aiprod_provider_requests_total"
    assert delta(requests, provider="testprov", call="speech", outcome="ok") == 1
    assert delta(requests, provider="testprov", call="speech", outcome="http_5xx") == 1
    assert delta(requests, provider="testprov", call="speech", outcome="http_4xx") == 1
    assert delta(requests, provider="testprov", call="chat", outcome="http_5xx") == 2
    errors = "aiprod_provider_errors_total"
    assert delta(errors, provider="testprov", call="speech", kind="permanent") == 1
    assert delta(errors, provider="testprov", call="chat", kind="transient") == 1
    assert delta("aiprod_provider_request_duration_seconds_count", provider="testprov") == 5


def test_provider_charges_are_counted(recorder: None) -> None:
    before = now_samples()
    prices = PriceTable.default(0.12, {"testprov": {"characters": 0.001}})
    Meter(prices).charge("testprov", "speech", "characters", 500)
    after = now_samples()
    cost = "aiprod_provider_cost_usd_total"
    assert value(after, cost, provider="testprov") - value(before, cost, provider="testprov") == (
        pytest.approx(0.5)
    )
    units = "aiprod_provider_units_total"
    labels = {"provider": "testprov", "unit": "characters"}
    assert value(after, units, **labels) - value(before, units, **labels) == 500


def test_without_a_recorder_the_engine_reports_to_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_recorder", None)
    before = now_samples()
    assert _client([200]).request("speech", "POST", "x").status_code == 200
    labels = {"provider": "testprov", "call": "speech", "outcome": "ok"}
    name = "aiprod_provider_requests_total"
    assert value(now_samples(), name, **labels) == value(before, name, **labels)


class _Bus:
    overflows = 0

    def unsubscribe(self, sub: Subscription) -> None:
        pass


def _envelope(seq: int, created: datetime) -> Envelope:
    text = f'{{"type":"stage.progress","seq":{seq},"ts":"{created.isoformat()}"}}'
    return Envelope(uuid.uuid4(), uuid.uuid4(), seq, "stage.progress", text)


async def test_a_subscriber_that_falls_behind_is_counted_as_dropped() -> None:
    before = now_samples()
    sub = Subscription(bus=_Bus(), scope="user", job_id=None, owner_id=uuid.uuid4(), maxsize=8)  # type: ignore[arg-type]
    for seq in range(1, 12):
        sub.offer(_envelope(seq, datetime.now(UTC)))
    after = now_samples()
    name = "aiprod_event_subscribers_dropped_total"
    assert value(after, name, scope="user") - value(before, name, scope="user") == 1


def test_an_envelope_knows_when_its_event_was_recorded() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    assert _envelope(1, when).created() == when.timestamp()
    assert Envelope(uuid.uuid4(), uuid.uuid4(), 1, "job.queued", "").created() is None


async def test_fan_out_lag_is_measured(tmp_path: Path, database_url: str) -> None:
    settings = base_settings(tmp_path, database_url)
    db = Database(settings.sqlalchemy_url)
    bus = EventBus(db, settings)
    try:
        owner = uuid.uuid4()
        sub = bus.subscribe("user", owner_id=owner)
        before = now_samples()
        env = _envelope(1, datetime.now(UTC) - timedelta(seconds=100))
        env = Envelope(env.job_id, owner, 1, env.type, env.text)
        await bus.hand_out([env])
        after = now_samples()
        assert sub.pending() == 1
        count = "aiprod_event_fanout_lag_seconds_count"
        assert value(after, count) - value(before, count) == 1
        # Recorded 100 s ago: past the last bucket's edge, and at least that long.
        bucket = "aiprod_event_fanout_lag_seconds_bucket"
        assert value(after, bucket, le="30.0") - value(before, bucket, le="30.0") == 0
        assert value(after, bucket, le="+Inf") - value(before, bucket, le="+Inf") == 1
        total = "aiprod_event_fanout_lag_seconds_sum"
        assert value(after, total) - value(before, total) >= 100
        assert (
            value(after, "aiprod_events_fanned_out_total")
            - value(before, "aiprod_events_fanned_out_total")
            == 1
        )
    finally:
        await asyncio.sleep(0)
        await db.dispose()
