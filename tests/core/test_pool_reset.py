"""Connections go back to the pool without asyncpg's reset query (`reset_connection`): a
transaction an interrupted request left open is still rolled back on release (asyncpg's pool
does it before the reset hook, which checks again), and nothing of it is visible after. A free
connection is taken without a timer; a full pool still answers 503 after the queue timeout."""

from __future__ import annotations

import time

from fastapi import FastAPI

from app.core.config import Settings
from app.core.db import Database
from app.core.errors import ServiceUnavailable


async def test_an_open_transaction_is_rolled_back_on_release(app: FastAPI) -> None:
    db = app.state.db
    pool = await db.pool()
    async with db.read() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMP TABLE left_open (x int)")
        assert conn.is_in_transaction()
    # The same connection (the pool hands back the one just released when it is idle).
    for _ in range(pool.get_size()):
        async with db.read() as conn:
            if await conn.fetchval("SELECT pg_backend_pid()") == pid:
                assert not conn.is_in_transaction()
                assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
                return
    raise AssertionError("the released connection did not come back")


async def test_a_full_pool_answers_503_after_the_queue_timeout(database_url: str) -> None:
    """Idle connections are handed over without a timer; with none free, a request waits at
    most `DB_CONNECT_TIMEOUT_S` and gets a 503 with Retry-After."""
    db = Database(Settings(database_url=database_url, db_pool_size=1, db_connect_timeout_s=0.5))
    try:
        async with db.read() as first:
            assert await first.fetchval("SELECT 1") == 1
            started = time.monotonic()
            try:
                async with db.read():
                    raise AssertionError("a second connection from a pool of one")
            except ServiceUnavailable as exc:
                assert exc.headers == {"Retry-After": "2"}
            assert 0.4 < time.monotonic() - started < 2.0
        async with db.read() as again:  # the idle one, at once
            assert await again.fetchval("SELECT 2") == 2
    finally:
        await db.close()
