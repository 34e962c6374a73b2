"""Secondary indexes of `incidents` dropped for a big load and built again after it.

Maintaining eleven indexes row by row costs several times what building them once does. A
load that is large relative to the store records the definitions in its job row (committed
first), drops the indexes, writes, and builds them again on two connections in parallel with
a raised `maintenance_work_mem`. The primary key and the unique external_id index stay: the
upsert needs them. Readers meanwhile get the same answers, slower; writers wait for the
rebuild (CREATE INDEX holds a SHARE lock). A load killed at any point leaves the definitions
in the job: `restore` (run first by the next `incidents import` of the file) builds whatever
is missing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

SECONDARY_SQL = """
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS ddl,
       pg_relation_size(i.indexrelid) AS bytes
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'incidents'::regclass AND NOT i.indisprimary AND NOT i.indisunique
ORDER BY bytes DESC, name
"""

Connect = Callable[[], Awaitable[asyncpg.Connection]]


async def definitions(conn: asyncpg.Connection) -> list[dict[str, str]]:
    return [{"name": r["name"], "ddl": r["ddl"]} for r in await conn.fetch(SECONDARY_SQL)]


async def drop(conn: asyncpg.Connection, defs: list[dict[str, str]]) -> None:
    """Drops the indexes `defs` names (already recorded by the caller). One short lock."""
    async with conn.transaction():
        for d in defs:
            await conn.execute(f'DROP INDEX IF EXISTS "{d["name"]}"')


async def missing(conn: asyncpg.Connection, defs: list[dict[str, str]]) -> list[dict[str, str]]:
    present = {
        r["relname"]
        for r in await conn.fetch(
            "SELECT relname FROM pg_class WHERE relkind = 'i' AND relname = ANY($1::text[])",
            [d["name"] for d in defs],
        )
    }
    return [d for d in defs if d["name"] not in present]


async def build(
    connect: Connect,
    defs: list[dict[str, str]],
    *,
    workers: int = 2,
    memory: str = "1GB",
) -> dict[str, float]:
    """Builds `defs` (largest first) on `workers` connections; seconds per index."""
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for d in defs:
        queue.put_nowait(d)
    seconds: dict[str, float] = {}

    async def worker() -> None:
        conn = await connect()
        try:
            await conn.execute("SELECT set_config('maintenance_work_mem', $1, false)", memory)
            await conn.execute("SET statement_timeout = 0")
            # Two builds on two cores: no parallel workers on top of them.
            if workers > 1:
                await conn.execute("SET max_parallel_maintenance_workers = 0")
            while not queue.empty():
                d = queue.get_nowait()
                started = time.perf_counter()
                await conn.execute(
                    d["ddl"].replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
                )
                seconds[d["name"]] = time.perf_counter() - started
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(max(1, min(workers, len(defs))))))
    return seconds


async def restore(conn: asyncpg.Connection, connect: Connect, saved: Any) -> dict[str, float]:
    """Builds the recorded indexes an interrupted load left missing."""
    defs = json.loads(saved) if isinstance(saved, str) else (saved or [])
    todo = await missing(conn, defs)
    return await build(connect, todo) if todo else {}
