"""One Settings object for the whole application, read from AIPROD_* variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIPROD_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path(".aiprod"), description="Where caches and local data live.")
    cache_dir: Path | None = Field(None, description="Stage cache (default: DATA_DIR/cache).")
    cache_ttl_hours: float = Field(168.0, gt=0)
    cache_enabled: bool = True

    compute_price_per_hour: float = Field(
        0.12, ge=0, description="USD per CPU-hour charged for built-in backends."
    )
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Overrides of the price table: {backend: {unit: USD per unit}}.",
    )

    @property
    def stage_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"


@lru_cache
def get_settings() -> Settings:
    return Settings()
