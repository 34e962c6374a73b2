"""Settings, read once from the environment (and an optional `.env` file)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    db_command_timeout_s: float = Field(default=15.0, gt=0)
    statement_timeout_ms: int = Field(default=15000, ge=100)
    # How often the API folds the dashboard rollups' delta rows (0: never; imports still do).
    rollup_compact_interval_s: float = Field(default=30.0, ge=0)

    allow_anonymous_read: bool = True
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

    cors_origins: list[str] = Field(default_factory=list)
    log_level: str = "info"

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
