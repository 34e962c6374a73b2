"""The connection pool (asyncpg), and a connection per request: reads on a pooled connection,
writes in one transaction that commits when the request succeeds and rolls back if it fails.

Reads build their JSON inside PostgreSQL and hand the bytes straight to the client (fixed SQL
text, `$n` parameters, prepared statements reused by asyncpg's statement cache).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.core.config import Settings
from app.core.errors import ServiceUnavailable

_UNAVAILABLE = (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError)


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


async def reset_connection(conn: asyncpg.Connection) -> None:
    """What a connection needs when it goes back to the pool. asyncpg's default runs a reset
    query (advisory unlocks, CLOSE ALL, UNLISTEN, RESET ALL): a round trip per request that
    profiles put at a tenth of a cheap request. Requests leave no session state here (settings
    only with SET LOCAL, advisory locks only per transaction, no LISTEN, cursors only inside
    transactions; the bulk load's session settings are on a connection of its own), so only
    a transaction left open by an interrupted request is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The database is unavailable; retry shortly.", headers={"Retry-After": "2"}
    )


async def init_connection(conn: asyncpg.Connection) -> None:
    """json/jsonb come back as text: the API forwards them without decoding."""
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, encoder=lambda v: v, decoder=lambda v: v, schema="pg_catalog", format="text"
        )


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: asyncpg.Pool | None = None

    async def pool(self) -> asyncpg.Pool:
        """The pool, created on first use so the app starts even while the database is down."""
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self.settings.plain_database_url,
                    min_size=0,
                    max_size=self.settings.db_pool_size,
                    timeout=self.settings.db_connect_timeout_s,
                    command_timeout=self.settings.db_command_timeout_s,
                    server_settings=server_settings(self.settings),
                    init=init_connection,
                    reset=reset_connection,
                    max_inactive_connection_lifetime=60,
                )
            except _UNAVAILABLE as exc:
                raise _unavailable() from exc
        return self._pool

    @asynccontextmanager
    async def read(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection (autocommit: each statement sees the newest data)."""
        pool = await self.pool()
        try:
            if pool.get_idle_size():
                # A free connection is handed over without waiting: no timer to arm (the
                # timeout costs a get-one ~8% of its time under load).
                conn = await pool.acquire()
            else:
                conn = await pool.acquire(timeout=self.settings.db_connect_timeout_s)
        except _UNAVAILABLE as exc:
            raise _unavailable() from exc
        try:
            yield conn
        finally:
            await pool.release(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection in one transaction: commits when the block ends, rolls back if
        it raises."""
        async with self.read() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def long_connection(self, seconds: float) -> AsyncIterator[asyncpg.Connection]:
        """A connection of its own for work that may take minutes (a bulk load): its statement
        timeout and the client's wait are `seconds` instead of the pool's 15 s, and it does
        not hold a pool slot that requests are waiting for. Not in a transaction."""
        settings = {**server_settings(self.settings), "statement_timeout": str(int(seconds * 1000))}
        try:
            conn = await asyncpg.connect(
                self.settings.plain_database_url,
                timeout=self.settings.db_connect_timeout_s,
                command_timeout=seconds,
                server_settings=settings,
            )
        except _UNAVAILABLE as exc:
            raise _unavailable() from exc
        try:
            await init_connection(conn)
            yield conn
        finally:
            await conn.close()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
