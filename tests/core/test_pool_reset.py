"""Connections go back to the pool without asyncpg's reset query (`reset_connection`): a
transaction an interrupted request left open is still rolled back on release (asyncpg's pool
does it before the reset hook, which checks again), and nothing of it is visible after."""

from __future__ import annotations

from fastapi import FastAPI


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
