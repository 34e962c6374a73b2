"""The HTTP floor: a bare ASGI app (no framework) on uvicorn serving each benchmark scenario's
SQL — the statement the API sends, built by the API's own code (`http_bench.floor_sql`), so
the same fields — and returning the bytes PostgreSQL built. What is left between it and the
API is the API's own per-request work (routing, parameters, auth, middleware, envelopes).

    DATABASE_URL=postgresql://.../incidents_bench \\
        .venv/bin/uvicorn http_floor:app --app-dir bench --port 8020 [--workers 2]

GET /{scenario} runs that scenario (`bench/http_bench.py` scenario names). `http_bench.py`
starts it itself and prints its req/s beside the database floor and ours.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from app.core.config import Settings, to_plain_url  # noqa: E402
from app.core.db import init_connection, server_settings  # noqa: E402

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

STATE: dict[str, Any] = {}
JSON = [(b"content-type", b"application/json")]
BINARY = [(b"content-type", b"application/vnd.mapbox-vector-tile")]


async def startup() -> None:
    from http_bench import SCENARIOS, floor_sql

    url = to_plain_url(os.environ["DATABASE_URL"])
    settings = Settings(database_url=url)
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=int(os.environ.get("DB_POOL_SIZE", "16")),
        init=init_connection,
        server_settings=server_settings(settings),
    )
    async with pool.acquire() as conn:
        sample_id = await conn.fetchval(
            "SELECT id FROM incidents WHERE deleted_at IS NULL ORDER BY id LIMIT 1 OFFSET 500000"
        )
        queries = {}
        for name, spec in SCENARIOS.items():
            queries[name] = await floor_sql(conn, name, spec, int(sample_id or 1))
    STATE.update(pool=pool, queries=queries)


def body_of(rows: list[asyncpg.Record]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The rows' bytes: one value as it is, several as a JSON array of them (a row's `doc`
    column when it has one: the others are keyset columns for the next page)."""
    values = [
        r["doc"] if "doc" in r.keys() else r[0] if len(r) == 1 else orjson.dumps(dict(r)).decode()
        for r in rows
    ]
    if len(values) == 1 and isinstance(values[0], bytes):
        return values[0], BINARY
    if len(values) == 1 and isinstance(values[0], str) and values[0][:1] in "{[":
        return values[0].encode(), JSON
    parts = [v if isinstance(v, bytes) else str(v).encode() for v in values]
    return b"[" + b",".join(parts) + b"]", JSON


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await STATE["pool"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = STATE["queries"].get(scope["path"].strip("/"))
    if query is None:
        await send({"type": "http.response.start", "status": 404, "headers": JSON})
        await send({"type": "http.response.body", "body": b'{"error":"no such scenario"}'})
        return
    sql, values = query
    async with STATE["pool"].acquire() as conn:
        rows = await conn.fetch(sql, *values)
    body, headers = body_of(rows)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
