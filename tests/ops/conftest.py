"""Fixtures for the metrics and log tests: an app with a scrape token (on
SQLite and PostgreSQL), a reader of the Prometheus text, and a capture of the
JSON log lines written while a test runs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiprod.ops.logs import JsonFormatter
from aiprod.settings import Settings
from tests.api.conftest import Api, running
from tests.conftest import base_settings

SCRAPE_TOKEN = "scrape-" + "s" * 40

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "metrics.token"
    path.write_text(SCRAPE_TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def ops_settings(tmp_path: Path, database_url: str, token_file: Path) -> Settings:
    return base_settings(
        tmp_path,
        database_url,
        metrics_token_file=token_file,
        api_key_rotation_check_seconds=0,
        retention_check_seconds=0,
    )


@pytest.fixture
async def api(ops_settings: Settings) -> AsyncIterator[Api]:
    async with running(ops_settings) as a:
        yield a


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(api: Api) -> Samples:
    r = await api.client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert r.status_code == 200, r.text
    return parse(r.text)


class LogLines:
    """The JSON lines written by every logger while the fixture lives."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def where(self, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.all() if all(e.get(k) == v for k, v in fields.items())]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Capture in the JSON format, ours at DEBUG and the libraries' at INFO
    (the handler formats as a line is written, so each line carries the
    context it was written in)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root, ours = logging.getLogger(), logging.getLogger("aiprod")
    levels = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG)
    try:
        yield LogLines(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
