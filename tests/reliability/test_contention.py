"""Concurrent writers: optimistic locking loses no update; overlapping bulk upserts keep each
external_id once."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest

from tests.conftest import incident

pytestmark = pytest.mark.usefixtures("clean_incidents")


async def test_twenty_clients_incrementing_with_if_match_lose_nothing(
    live_server: str, write_key: str
) -> None:
    headers = {"Authorization": f"Bearer {write_key}"}
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as client:
        created = await client.post("/v1/incidents", json=incident(fatalities=0), headers=headers)
        url = created.headers["location"]
        conflicts = 0

        async def increment() -> None:
            nonlocal conflicts
            while True:
                current = await client.get(url)
                etag = current.headers["etag"]
                resp = await client.patch(
                    url,
                    json={"fatalities": current.json()["fatalities"] + 1},
                    headers={**headers, "If-Match": etag},
                )
                if resp.status_code == 200:
                    return
                assert resp.status_code == 412, resp.text
                conflicts += 1

        await asyncio.gather(*(increment() for _ in range(20)))
        final = (await client.get(url)).json()
    assert final["fatalities"] == 20
    assert final["version"] == 21
    assert conflicts > 0  # the clients really did collide


async def test_overlapping_bulk_upserts_keep_each_external_id_once(
    live_server: str, write_key: str, db: asyncpg.Connection
) -> None:
    headers = {"Authorization": f"Bearer {write_key}", "Content-Type": "application/x-ndjson"}
    batches = []
    for n in range(6):
        ids = range(n * 50, n * 50 + 150)  # each batch overlaps the next two
        batches.append(
            "\n".join(json.dumps(incident(external_id=f"B{i}", fatalities=n)) for i in ids)
        )
    async with httpx.AsyncClient(base_url=live_server, timeout=120) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/incidents/bulk", content=body, headers=headers) for body in batches)
        )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    distinct = await db.fetchval("SELECT count(DISTINCT external_id) FROM incidents")
    total = await db.fetchval("SELECT count(*) FROM incidents")
    assert distinct == total == 400
    inserted = sum(r.json()["inserted"] for r in responses)
    assert inserted == 400
