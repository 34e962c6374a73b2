"""Settings, read once from the environment (and an optional `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Retries of a webhook delivery, in seconds after the failed attempt (about a day in all).
DEFAULT_RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 7200, 18000, 36000, 86400)
# ACLED geo_precision: 1 the named town, 2 near it or part of a region, 3 a provincial capital
# standing for a larger region.
DEFAULT_UNCERTAINTY_KM = {1: 1.0, 2: 10.0, 3: 50.0}
# UCDP GED where_prec: 1 exact, 2 within 25 km, 3 second-order division, 4 first-order
# division, 5 a linear feature or an area between places, 6 the country, 7 waters or airspace.
DEFAULT_WHERE_PREC_KM = {1: 1.0, 2: 25.0, 3: 50.0, 4: 150.0, 5: 100.0, 6: 500.0, 7: 500.0}
MAX_UNCERTAINTY_KM = 20_000.0


def to_asyncpg_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and return the SQLAlchemy asyncpg form."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg2://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def to_plain_url(url: str) -> str:
    """The libpq/asyncpg form (`postgresql://`) of a database URL."""
    return "postgresql://" + to_asyncpg_url(url)[len("postgresql+asyncpg://") :]


class Settings(BaseSettings):
    """Every knob of the service. Environment variables use the same names, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/incidents"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    # Requests a worker admits at once (arrived, response not started); one more gets an
    # immediate 503 with Retry-After. 0: no bound.
    max_in_flight: int = Field(default=64, ge=0)
    db_command_timeout_s: float = Field(default=15.0, gt=0)
    statement_timeout_ms: int = Field(default=15000, ge=100)
    # How often the API folds the dashboard rollups' delta rows (0: never; imports still do).
    rollup_compact_interval_s: float = Field(default=30.0, ge=0)

    allow_anonymous_read: bool = True
    # `development` allows the placeholder secrets below; anything else refuses them.
    environment: Literal["development", "production"] = "production"
    key_pepper: str = "dev-pepper-change-me"
    cursor_secret: str = "dev-cursor-secret-change-me"

    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_bulk_body_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    # A client that sends no body bytes for this long is cut off with a 408.
    body_read_timeout_s: float = Field(default=30.0, gt=0)
    max_page_size: int = Field(default=10000, ge=1)
    default_page_size: int = Field(default=100, ge=1)

    # Requests per minute per API key (per address for anonymous reads); 0 turns it off.
    rate_limit_per_minute: int = Field(default=0, ge=0)
    rate_limit_burst: int = Field(default=0, ge=0)
    # Worker processes serving the API (set by `incidents serve --workers N`; uvicorn and
    # gunicorn read it too): each enforces its 1/N share of the rate limit.
    web_concurrency: int = Field(default=1, ge=1, le=256)

    cors_origins: list[str] = Field(default_factory=list)
    log_level: str = "info"

    # Alerts (webhooks and live streams).
    # Hosts (names, addresses or networks such as 10.0.0.0/8), comma-separated, that webhook
    # URLs may reach although they are not public addresses.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_schedule_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [float(s) for s in DEFAULT_RETRY_SCHEDULE]
    )
    # Run the delivery worker inside the API process (`incidents worker` runs one on its own).
    webhook_worker: bool = True
    webhook_concurrency: int = Field(default=32, ge=1, le=500)
    # Longest wait between looks for due deliveries (new ones wake the worker at once).
    webhook_poll_s: float = Field(default=1.0, gt=0, le=60)
    # After a rotation the previous secret signs too, for this long.
    webhook_secret_grace_s: float = Field(default=86400.0, ge=0)
    max_subscriptions_per_key: int = Field(default=10000, ge=1)
    # Delivered and failed deliveries (and their attempts) are deleted after this many days
    # (0: kept forever); pending ones never.
    webhook_log_retention_days: float = Field(default=30.0, ge=0)
    # Live streams: how often each API process reads the change feed, the heartbeat, and how
    # many streams one process serves.
    stream_poll_s: float = Field(default=0.25, gt=0, le=10)
    stream_heartbeat_s: float = Field(default=15.0, gt=0)
    max_streams: int = Field(default=1000, ge=1)

    # Location uncertainty (km) of an incident that gives none, by its geo_precision, as
    # `precision:km` pairs; and what a UCDP import writes for each `where_prec`.
    uncertainty_km_by_geo_precision: Annotated[dict[int, float], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_UNCERTAINTY_KM)
    )
    uncertainty_km_by_where_prec: Annotated[dict[int, float], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_WHERE_PREC_KM)
    )

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_retry_schedule_s", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_retry_schedule_s")
    @classmethod
    def _check_schedule(cls, value: list[float]) -> list[float]:
        if not value or any(step <= 0 for step in value):
            raise ValueError("a non-empty list of positive seconds")
        return value

    @field_validator(
        "uncertainty_km_by_geo_precision", "uncertainty_km_by_where_prec", mode="before"
    )
    @classmethod
    def _split_pairs(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = (part.split(":", 1) for part in value.split(",") if part.strip())
            return {int(k): float(v) for k, v in pairs}
        return value

    @field_validator("uncertainty_km_by_geo_precision", "uncertainty_km_by_where_prec")
    @classmethod
    def _check_pairs(cls, value: dict[int, float]) -> dict[int, float]:
        if any(not 0 <= km <= MAX_UNCERTAINTY_KM for km in value.values()):
            raise ValueError(f"kilometres between 0 and {MAX_UNCERTAINTY_KM:g}")
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        return to_asyncpg_url(value)

    @property
    def plain_database_url(self) -> str:
        return to_plain_url(self.database_url)


@lru_cache
def get_settings() -> Settings:
    return Settings()
