"""GET /v1/changes: ordered, complete, safe against transactions that commit late."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import incident

pytestmark = pytest.mark.usefixtures("clean_incidents")


async def follow(
    client: httpx.AsyncClient, cursor: str | None = None, limit: int = 7
) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        resp = await client.get("/v1/changes", params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert page["next_cursor"]
        cursor = page["next_cursor"]
        items += page["items"]
        if not page["items"]:
            return items, cursor


def replay(items: list[dict[str, Any]], state: dict[str, dict[str, Any]]) -> None:
    for item in items:
        if item["op"] == "delete":
            state.pop(item["id"], None)
        else:
            assert state.get(item["id"], {}).get("version", 0) < item["version"]
            state[item["id"]] = item["incident"]


async def live(db: asyncpg.Connection) -> dict[str, int]:
    rows = await db.fetch("SELECT id::text AS id, version FROM incidents WHERE deleted_at IS NULL")
    return {r["id"]: r["version"] for r in rows}


async def test_feed_reproduces_the_live_set(
    client: httpx.AsyncClient, writer: dict[str, str], db: asyncpg.Connection
) -> None:
    a = (await client.post("/v1/incidents", json=incident(external_id="C1"), headers=writer)).json()
    b = (await client.post("/v1/incidents", json=incident(external_id="C2"), headers=writer)).json()
    await client.patch(f"/v1/incidents/{a['id']}", json={"fatalities": 9}, headers=writer)
    await client.delete(f"/v1/incidents/{b['id']}", headers=writer)
    items, cursor = await follow(client)
    assert [(i["op"], i["id"]) for i in items] == [
        ("create", a["id"]),
        ("create", b["id"]),
        ("update", a["id"]),
        ("delete", b["id"]),
    ]
    assert items[2]["incident"]["fatalities"] == 9 and items[2]["changed_fields"] == ["fatalities"]
    tombstone = items[3]["incident"]
    assert tombstone["deleted"] is True and tombstone["external_id"] == "C2"
    assert {"op", "id", "external_id", "version", "at", "incident"} <= items[0].keys()
    state: dict[str, dict[str, Any]] = {}
    replay(items, state)
    assert {k: v["version"] for k, v in state.items()} == await live(db)
    # An empty page keeps the position and still gives a cursor to poll with.
    empty = (await client.get("/v1/changes", params={"cursor": cursor})).json()
    assert empty["items"] == [] and empty["next_cursor"]


async def test_late_commit_is_held_back_not_skipped(
    client: httpx.AsyncClient, writer: dict[str, str], database_url: str
) -> None:
    _, cursor = await follow(client)
    slow = await asyncpg.connect(database_url)
    try:
        tx = slow.transaction()
        await tx.start()
        # The slow writer takes its transaction id first...
        slow_id = await slow.fetchval(
            "INSERT INTO incidents (event_date, event_type, geom, external_id) VALUES "
            "('2020-01-01', 'Battles', ST_SetSRID(ST_MakePoint(45, 34), 4326), 'SLOW') "
            "RETURNING id"
        )
        await slow.execute(
            "INSERT INTO incident_revisions (incident_id, version, op, changed_by) "
            "VALUES ($1, 1, 'create', 'slow')",
            slow_id,
        )
        # ...a quick writer commits after it...
        quick = await client.post(
            "/v1/incidents", json=incident(external_id="QUICK"), headers=writer
        )
        assert quick.status_code == 201
        # ...and a reader polling now must not move past the slow one.
        items, cursor_during = await follow(client, cursor)
        assert items == []
        await tx.commit()
    finally:
        await slow.close()
    items, _ = await follow(client, cursor_during)
    assert [i["external_id"] for i in items] == ["SLOW", "QUICK"]


async def test_feed_under_concurrent_writers(
    client: httpx.AsyncClient, writer: dict[str, str], db: asyncpg.Connection
) -> None:
    rng = random.Random(5)
    state: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    done = asyncio.Event()

    async def writer_task(n: int) -> None:
        ids: list[str] = []
        for k in range(15):
            choice = rng.random()
            if not ids or choice < 0.5:
                resp = await client.post(
                    "/v1/incidents", json=incident(external_id=f"W{n}-{k}"), headers=writer
                )
                ids.append(resp.json()["id"])
            elif choice < 0.8:
                await client.patch(
                    f"/v1/incidents/{rng.choice(ids)}",
                    json={"fatalities": rng.randint(0, 50)},
                    headers=writer,
                )
            else:
                victim = ids.pop(rng.randrange(len(ids)))
                await client.delete(f"/v1/incidents/{victim}", headers=writer)

    async def reader_task() -> None:
        nonlocal cursor
        while not done.is_set():
            items, cursor = await follow(client, cursor, limit=5)
            replay(items, state)
            await asyncio.sleep(0.005)

    reader = asyncio.create_task(reader_task())
    await asyncio.gather(*(writer_task(n) for n in range(6)))
    done.set()
    await reader
    items, cursor = await follow(client, cursor)
    replay(items, state)
    assert {k: v["version"] for k, v in state.items()} == await live(db)


async def test_tampered_cursor_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/changes", params={"cursor": "bogus"})
    assert resp.status_code == 400 and resp.json()["errors"][0]["field"] == "cursor"
