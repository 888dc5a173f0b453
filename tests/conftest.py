"""Shared fixtures: an isolated data folder (stage cache) per test."""

from pathlib import Path

import pytest

from aiprod.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")
