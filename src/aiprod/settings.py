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

    # --- platform -----------------------------------------------------------
    database_url: str | None = Field(
        None, description="SQLAlchemy async URL; default: SQLite file DATA_DIR/aiprod.db."
    )
    storage_url: str | None = Field(
        None, description="Artifact store: a folder path, file:///..., or s3://bucket/prefix."
    )
    secret_key: str | None = Field(
        None,
        description="JWT signing key (≥ 32 chars). Unset: a random key is made once and "
        "kept in DATA_DIR/secret.key (mode 600).",
    )
    access_token_minutes: int = Field(15, ge=1, le=60)
    refresh_token_days: int = Field(7, ge=1, le=30)
    jwt_issuer: str = "aiprod"
    jwt_audience: str = "aiprod-api"

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=0, le=32, description="Embedded worker concurrency (0: none).")
    lease_seconds: float = Field(30.0, ge=2)
    heartbeat_seconds: float = Field(5.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=10)
    retry_backoff_seconds: float = Field(2.0, ge=0)
    poll_seconds: float = Field(1.0, gt=0)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    page_size_max: int = Field(100, ge=1, le=1000)
    work_dir: Path | None = Field(None, description="Workers' scratch space (DATA_DIR/work).")

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'aiprod.db').resolve()}"

    @property
    def artifact_url(self) -> str:
        return self.storage_url or str((self.data_dir / "artifacts").resolve())

    @property
    def scratch_dir(self) -> Path:
        return self.work_dir if self.work_dir is not None else self.data_dir / "work"

    @property
    def stage_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "cache"


@lru_cache
def get_settings() -> Settings:
    return Settings()
