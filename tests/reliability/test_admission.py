"""Load shedding: a worker admits at most MAX_IN_FLIGHT requests at once; one more gets a 503
problem with Retry-After at once instead of queueing, health probes are never shed, and the
bound frees as soon as the admitted request's response starts."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from app.main import create_app
from tests.conftest import make_settings


async def test_one_request_over_the_bound_is_shed_at_once(database_url: str) -> None:
    app = create_app(make_settings(database_url, max_in_flight=1))
    blocker = await asyncpg.connect(database_url)
    watcher = await asyncpg.connect(database_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            tx = blocker.transaction()
            await tx.start()
            # The admitted request waits on the table; its response has not started.
            await blocker.execute("LOCK TABLE incidents IN ACCESS EXCLUSIVE MODE")
            admitted = asyncio.create_task(client.get("/v1/incidents", params={"limit": 1}))
            try:
                for _ in range(200):
                    # (not on `blocker`: in its transaction the view is one snapshot)
                    waiting = await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                    if waiting:
                        break
                    await asyncio.sleep(0.05)
                assert waiting, "the first request never reached the database"
                started = time.perf_counter()
                shed = await client.get("/v1/taxonomy")
                assert time.perf_counter() - started < 1.0  # answered at once, not queued
                assert shed.status_code == 503
                assert shed.headers["content-type"] == "application/problem+json"
                assert shed.headers["retry-after"] == "1"
                assert "capacity" in shed.json()["detail"]
                assert shed.headers["x-content-type-options"] == "nosniff"
                assert (await client.get("/healthz")).status_code == 200  # never shed
            finally:
                await tx.rollback()
                await blocker.close()
                await watcher.close()
            assert (await admitted).status_code == 200
            # The bound is free again.
            assert (await client.get("/v1/taxonomy")).status_code == 200


async def test_off_with_zero(database_url: str) -> None:
    app = create_app(make_settings(database_url, max_in_flight=0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            codes = await asyncio.gather(*(client.get("/v1/taxonomy") for _ in range(30)))
    assert {r.status_code for r in codes} == {200}
