"""Connections: a SQLAlchemy async engine for transactional writes, an asyncpg pool for reads.

Reads build their JSON inside PostgreSQL and hand the bytes straight to the client, so they
go through asyncpg directly (fixed SQL text, `$n` parameters, prepared statements reused).
Writes go through SQLAlchemy's engine so each request is one transaction that commits on
success and rolls back on any error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.core.config import Settings
from app.core.errors import ServiceUnavailable


def server_settings(settings: Settings) -> dict[str, str]:
    """Session settings applied to every connection.

    `plan_cache_mode=force_custom_plan`: with bound parameters PostgreSQL switches to a generic
    plan after five runs, and for spatial filters that plan can be 100x slower than the custom
    one (selectivity depends on the bbox/radius values). Planning each query costs ~1 ms;
    a bad generic plan costs seconds.
    """
    return {
        "application_name": "conflict-incidents",
        "timezone": "UTC",
        "statement_timeout": str(settings.statement_timeout_ms),
        "plan_cache_mode": "force_custom_plan",
        "jit": "off",
        # Many small concurrent queries on few cores: parallel workers only add start-up cost.
        "max_parallel_workers_per_gather": "0",
        # Enough for exact (not lossy) bitmaps and in-memory aggregates of a dashboard query.
        "work_mem": "32MB",
    }


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: AsyncEngine = create_async_engine(
            settings.database_url,
            pool_size=max(2, settings.db_pool_size // 2),
            max_overflow=settings.db_pool_size,
            pool_pre_ping=True,
            pool_timeout=settings.db_connect_timeout_s,
            connect_args={
                "server_settings": server_settings(settings),
                "timeout": settings.db_connect_timeout_s,
                "command_timeout": settings.db_command_timeout_s,
            },
        )
        self._pool: asyncpg.Pool | None = None

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        # json/jsonb come back as text: the API forwards them without decoding.
        for typ in ("json", "jsonb"):
            await conn.set_type_codec(
                typ, encoder=lambda v: v, decoder=lambda v: v, schema="pg_catalog", format="text"
            )

    async def pool(self) -> asyncpg.Pool:
        """The read pool, created on first use so the app starts even while the DB is down."""
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self.settings.plain_database_url,
                    min_size=0,
                    max_size=self.settings.db_pool_size,
                    timeout=self.settings.db_connect_timeout_s,
                    command_timeout=self.settings.db_command_timeout_s,
                    server_settings=server_settings(self.settings),
                    init=self._init_connection,
                    max_inactive_connection_lifetime=60,
                )
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                raise ServiceUnavailable(
                    "The database is unavailable; retry shortly.", headers={"Retry-After": "2"}
                ) from exc
        return self._pool

    @asynccontextmanager
    async def read(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self.pool()
        try:
            conn_cm = pool.acquire(timeout=self.settings.db_connect_timeout_s)
            conn = await conn_cm.__aenter__()
        except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError) as exc:
            raise ServiceUnavailable(
                "The database is unavailable; retry shortly.", headers={"Retry-After": "2"}
            ) from exc
        try:
            yield conn
        finally:
            await conn_cm.__aexit__(None, None, None)

    # A pooled asyncpg connection for set-based writes that manage their own transaction.
    acquire = read

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: commits when the block ends, rolls back if it raises."""
        async with self.engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.engine.dispose()
