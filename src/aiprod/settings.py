"""One Settings object for the whole application, read from AIPROD_* variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal, cast

from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aiprod.access_config import OIDCIssuer, Role, check_secret
from aiprod.provider_config import ProviderConfig

RateClass = Literal["auth", "writes", "reads", "exports", "streams"]
DEFAULT_RATE_LIMITS: dict[RateClass, str] = {
    "auth": "10/minute",
    "writes": "60/minute",
    "reads": "600/minute",
    "exports": "10/minute",
    "streams": "30/minute",
}


class RoleQuota(BaseModel):
    """What one user of a role may use (null: no limit).  An admin may set any
    of them per user (``PUT /v1/admin/users/{id}/quotas``)."""

    model_config = ConfigDict(extra="forbid")

    running: int | None = Field(None, ge=0, description="Productions queued or processing at once.")
    per_day: int | None = Field(None, ge=0, description="Productions submitted in any 24 hours.")
    storage_bytes: int | None = Field(
        None, ge=0, description="Bytes kept: the productions' files plus uploads."
    )
    spend_month_usd: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Estimated USD per calendar month (UTC)."
    )


DEFAULT_QUOTAS: dict[Role, dict[str, int | float | None]] = {
    "admin": {},
    "user": {
        "running": 10,
        "per_day": 200,
        "storage_bytes": 20_000_000_000,
        "spend_month_usd": 100.0,
    },
    "service": {
        "running": 100,
        "per_day": 5000,
        "storage_bytes": 200_000_000_000,
        "spend_month_usd": 1000.0,
    },
    "viewer": {"running": 0, "per_day": 0, "storage_bytes": 0, "spend_month_usd": 0.0},
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AIPROD_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    data_dir: Path = Field(Path(".aiprod"), description="Where caches and local data live.")
    cache_dir: Path | None = Field(None, description="Stage cache (default: DATA_DIR/cache).")
    cache_ttl_hours: float = Field(168.0, gt=0)
    cache_enabled: bool = True
    neural_narration: bool = Field(
        True,
        description="Narrate English with the neural voice by default (`false`: eSpeak NG for "
        "every language, ~10x faster and robotic; an explicit neural voice is still honoured).",
    )

    compute_price_per_hour: float = Field(
        0.12, ge=0, description="USD per CPU-hour charged for built-in backends."
    )
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Overrides of the price table: {backend: {unit: USD per unit}}.",
    )

    # --- AI providers (production/providers) --------------------------------
    openai_chat: ProviderConfig = Field(
        default_factory=ProviderConfig,
        description="OpenAI-compatible Chat Completions (OpenAI, Ollama, vLLM, LM Studio, "
        "OpenRouter, Gemini's compatible endpoint): the `openai-chat` planner.",
    )
    openai_speech: ProviderConfig = Field(
        default_factory=ProviderConfig,
        description="OpenAI-style POST /audio/speech: the `openai-speech` narrator.",
    )
    elevenlabs: ProviderConfig = Field(
        default_factory=ProviderConfig, description="ElevenLabs text-to-speech: `elevenlabs`."
    )
    pexels: ProviderConfig = Field(
        default_factory=ProviderConfig, description="Pexels photo and video search: `pexels`."
    )
    pixabay: ProviderConfig = Field(
        default_factory=ProviderConfig, description="Pixabay photo and video search: `pixabay`."
    )
    openai_images: ProviderConfig = Field(
        default_factory=ProviderConfig,
        description="OpenAI-style POST /images/generations: the `openai-images` visuals.",
    )
    replicate_video: ProviderConfig = Field(
        default_factory=ProviderConfig,
        description="Replicate-style prediction API for text-to-video models (model "
        "`owner/name`): the `replicate-video` visuals.",
    )
    provider_fallback: dict[
        Literal["plan", "narrate", "visuals", "music", "montage", "qa"], Literal["fail", "builtin"]
    ] = Field(
        default_factory=dict,
        description="Per stage, what a failed provider leads to: `fail` (the default: the "
        "production fails, naming the provider, the call and why) or `builtin` (the stage is "
        "made by the built-in backend instead, recorded in the manifest and the events).",
    )
    provider_allow_private_networks: bool = Field(
        False,
        description="Let files a provider hands back (stock photos, generated images) be "
        "fetched from loopback/private addresses (tests, labs). Off: such URLs are refused.",
    )
    provider_download_max_bytes: int = Field(
        300_000_000, ge=1024, description="Largest file fetched from a provider's URL."
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
    csrf_token_minutes: int = Field(
        720,
        ge=1,
        le=10080,
        description="Lifetime of the studio's CSRF tokens (the studio fetches a new one "
        "when its token expires).",
    )
    jwt_issuer: str = "aiprod"
    jwt_audience: str = "aiprod-api"

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=0, le=32, description="Embedded worker concurrency (0: none).")
    processes: int = Field(
        0,
        ge=0,
        le=64,
        description="API processes `aiprod serve` runs on one port (0: one per core); with "
        "more than one, the worker runs in a process of its own.",
    )
    api_process_max_mb: int = Field(
        512, ge=0, description="An API process resident above this is replaced (0: no bound)."
    )
    worker_process_max_mb: int = Field(
        2048,
        ge=0,
        description="The worker process resident above this is replaced; its jobs resume "
        "from their last stage (0: no bound).",
    )
    lease_seconds: float = Field(30.0, ge=2)
    heartbeat_seconds: float = Field(5.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=10)
    retry_backoff_seconds: float = Field(2.0, ge=0)
    poll_seconds: float = Field(1.0, gt=0)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    hsts: str = Field(
        "max-age=63072000; includeSubDomains; preload",
        max_length=200,
        pattern=r"^$|^max-age=\d+(; ?includeSubDomains)?(; ?preload)?$",
        description="Strict-Transport-Security sent on every answer served over https "
        "(directly, or behind a trusted proxy saying so); preload-ready by default; empty: none.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of the reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed (JSON list). Empty: the peer's "
        "own address is the client's, whatever headers it sends.",
    )
    page_size_max: int = Field(100, ge=1, le=1000)
    work_dir: Path | None = Field(None, description="Workers' scratch space (DATA_DIR/work).")

    # --- user media (POST /v1/media) ----------------------------------------
    media_max_bytes: int = Field(
        200_000_000, ge=1024, description="Largest upload accepted by POST /v1/media (bytes)."
    )
    media_max_pixels: int = Field(
        40_000_000, ge=1, description="Largest image (width x height) an upload may decode to."
    )
    media_max_dimension: int = Field(
        4096, ge=16, le=16384, description="Largest width or height of an uploaded video."
    )
    media_max_seconds: float = Field(
        600.0, gt=0, le=86400, description="Longest uploaded video or audio (seconds)."
    )
    media_quota_bytes: int = Field(
        5_000_000_000, ge=0, description="Bytes of uploads one user may keep (0: no cap)."
    )
    media_uploads_in_flight: int = Field(
        4, ge=1, le=256, description="Uploads one API process receives and checks at once."
    )

    # --- exports, deletion and retention (aiprod.exports, jobs.deletion) ----
    export_max_bytes: int = Field(
        10_000_000_000,
        ge=1024,
        description="Largest export (JSON, CSV or ZIP) served; a larger one answers 413 "
        "`export_too_large` before any byte is sent.",
    )
    retention_days: float = Field(
        0.0,
        ge=0,
        description="Delete finished (completed, failed, cancelled) productions this many days "
        "after they finished, with everything they own; the audit log is kept (0: keep forever).",
    )
    retention_check_seconds: float = Field(
        3600.0,
        ge=0,
        description="Period of the retention task in the API, which also finishes deletions "
        "a crash interrupted (0: off).",
    )
    deletion_wait_seconds: float = Field(
        30.0,
        ge=0,
        le=300,
        description="How long DELETE waits for a running production's worker to stop before "
        "answering 409 `still_running` (the cancellation stays requested).",
    )

    # --- live progress and webhooks (aiprod.events) ------------------------
    redis_url: str | None = Field(
        None,
        description="redis://host:port/db for cross-process event fan-out and shared rate-limit "
        "counts; unset (or down): the database carries events (LISTEN/NOTIFY on PostgreSQL, "
        "polling on SQLite) and each process counts rate limits itself.",
    )
    events_channel: str = Field("aiprod:events", min_length=1, max_length=200)
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) allowed to open WebSocket and SSE streams "
        "from a browser, besides the API's own origin.  JSON list in the environment.",
    )
    events_heartbeat_seconds: float = Field(15.0, gt=0, le=300)
    events_poll_seconds: float = Field(
        0.25, gt=0, description="Database polling period when no push channel is up."
    )
    events_reconcile_seconds: float = Field(
        5.0, gt=0, description="Safety-net check of the database while a push channel is up."
    )
    events_queue_size: int = Field(
        256, ge=8, le=100_000, description="Live events buffered per subscriber before resync."
    )
    ws_ticket_seconds: int = Field(30, ge=5, le=300)
    webhooks_enabled: bool = Field(True, description="Deliver webhooks from this API process.")
    webhook_max_attempts: int = Field(8, ge=1, le=30)
    webhook_retry_base_seconds: float = Field(5.0, ge=0)
    webhook_retry_max_seconds: float = Field(3600.0, gt=0)
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=120)
    webhook_poll_seconds: float = Field(1.0, gt=0)
    webhook_allow_private_networks: bool = Field(
        False,
        description="Let every endpoint target loopback/private addresses (tests, labs). "
        "Otherwise only an admin can allow it, per endpoint.",
    )

    # --- rate limits and quotas (aiprod.api.ratelimit, aiprod.jobs.quotas) --
    rate_limits_enabled: bool = Field(
        True, description="Refuse requests past `rate_limits` with 429 (false: no rate limits)."
    )
    rate_limits: dict[RateClass, str] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
        description="Per class of route, the requests allowed per client address and per "
        "credential (exports and streams: per user too), in the `limits` notation "
        '("10/minute", "100/hour;1000/day"); JSON object, classes left out keep their default.',
    )
    rate_limit_processes: int = Field(
        1,
        ge=1,
        le=64,
        description="API processes counting rate limits in memory side by side (set by "
        "`aiprod serve` for its processes): without Redis each enforces 1/N of every limit.",
    )
    rate_limit_prefix: str = Field(
        "aiprod:rl", min_length=1, max_length=100, description="Prefix of the Redis keys."
    )
    quotas: dict[Role, RoleQuota] = Field(
        default_factory=lambda: {r: RoleQuota.model_validate(q) for r, q in DEFAULT_QUOTAS.items()},
        description="Per role, what one user may use (JSON object: "
        '{"user": {"running": 10, "per_day": 200, "storage_bytes": ..., "spend_month_usd": ...}}; '
        "fields left out keep their default, null lifts a limit).",
    )

    # --- identity and access (aiprod.identity) -----------------------------
    previous_secret_keys: list[str] = Field(
        default_factory=list,
        description="Former signing keys still accepted for verification (JSON list), so the "
        "key can rotate without logging anyone out; drop one after an access-token lifetime.",
    )
    api_key_secret: str | None = Field(
        None,
        description="HMAC key (≥ 32 chars) under which API keys are stored. Unset: a random "
        "key is made once and kept in DATA_DIR/api-key.secret (mode 600).",
    )
    api_key_default_days: int = Field(90, ge=1, le=365, description="Default API-key lifetime.")
    api_key_grace_seconds: float = Field(
        7 * 86400.0,
        ge=0,
        le=30 * 86400.0,
        description="How long the previous version of a rotated API key keeps working.",
    )
    api_key_rotate_after_days: float = Field(
        30.0, gt=0, description="Keys older than this are rotated by the periodic task."
    )
    api_key_rotation_check_seconds: float = Field(
        3600.0, ge=0, description="Period of the key-rotation task in the API (0: off)."
    )
    login_account_free_failures: int = Field(
        5, ge=1, le=100, description="Failed logins per account before delays start."
    )
    login_address_free_failures: int = Field(
        20, ge=1, le=10_000, description="Failed logins per client address before delays start."
    )
    login_delay_base_seconds: float = Field(1.0, gt=0, le=60)
    login_delay_max_seconds: float = Field(900.0, gt=0, le=86400)
    login_failure_window_seconds: float = Field(
        900.0, gt=0, description="Failures older than this (since the last one) are forgotten."
    )
    oidc_issuers: list[OIDCIssuer] = Field(
        default_factory=list,
        description="External identity providers whose ID tokens are accepted (JSON list).",
    )

    # --- observability (aiprod.ops: /metrics, logs) --------------------------
    metrics_token_file: Path | None = Field(
        None,
        description="A file holding the token (≥ 32 characters) a Prometheus server sends as "
        "`Authorization: Bearer` to scrape /metrics. Unset: only an admin credential may.",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="Log lines as JSON (one object a line) or for people; `auto`: people when "
        "stderr is a terminal, JSON otherwise.",
    )
    access_log: bool = Field(True, description="One log line per HTTP request (`aiprod.access`).")

    @field_validator("secret_key", "api_key_secret")
    @classmethod
    def _strong_secret(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)

    @field_validator("metrics_token_file")
    @classmethod
    def _metrics_token(cls, value: Path | None) -> Path | None:
        """Readable and strong now, so that a bad token stops the start, not a scrape."""
        if value is not None:
            try:
                token = value.read_text().strip()
            except OSError as exc:
                raise ValueError(f"{value} cannot be read ({exc.strerror})") from None
            check_secret(token)
        return value

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits(cls, value: dict[str, str]) -> dict[str, str]:
        """Every class gets a limit; each must read in the `limits` notation."""
        merged: dict[str, str] = {**cast(dict[str, str], DEFAULT_RATE_LIMITS), **value}
        for name, text in merged.items():
            try:
                parse_many(text)
            except ValueError:
                raise ValueError(
                    f"rate_limits.{name}: {text!r} is not a rate limit "
                    '(e.g. "10/minute" or "100/hour;1000/day")'
                ) from None
        return merged

    @field_validator("quotas", mode="before")
    @classmethod
    def _quotas(cls, value: object) -> object:
        """A role's fields left out keep that role's default."""
        if not isinstance(value, dict):
            return value
        merged: dict[str, object] = {}
        for role in [*DEFAULT_QUOTAS, *(r for r in value if r not in DEFAULT_QUOTAS)]:
            given = value.get(role, {})
            if isinstance(given, RoleQuota):
                given = given.model_dump(exclude_unset=True)
            merged[role] = (
                {**DEFAULT_QUOTAS.get(role, {}), **given} if isinstance(given, dict) else given
            )
        return merged

    @field_validator("previous_secret_keys")
    @classmethod
    def _strong_previous(cls, value: list[str]) -> list[str]:
        return [check_secret(v) for v in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        """Each entry an address or CIDR network; '*' is refused: trusting every
        peer's X-Forwarded-For lets any client choose the address it is seen as."""
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or CIDR network"
                ) from None
        return value

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
