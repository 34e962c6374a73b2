"""GET /v1/stream on a real server, read by a real SSE client (`httpx-sse`): every matching
change once, resumable with Last-Event-ID, heartbeats, a clean close on shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.conftest import incident, start_server

KHANAQIN = {"near": "34.348,45.391", "radius_km": 25}
FAR = {"latitude": 36.19, "longitude": 44.01, "location": "Erbil"}


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[tuple[Any, str]]:
    proc, base = start_server(
        database_url, WEBHOOK_WORKER="false", STREAM_POLL_S="0.1", STREAM_HEARTBEAT_S="1"
    )
    yield proc, base
    proc.terminate()
    proc.wait(timeout=30)


async def take(events: Any, n: int, within: float = 15) -> list[ServerSentEvent]:
    """The next `n` events of the stream's event iterator."""

    async def read() -> list[ServerSentEvent]:
        got: list[ServerSentEvent] = []
        while len(got) < n:
            sse = await anext(events)
            if sse.data:  # httpx-sse hands a heartbeat comment over as an empty event
                got.append(sse)
        return got

    return await asyncio.wait_for(read(), within)


async def test_resume_with_last_event_id_sees_every_event_once(
    server: tuple[Any, str], writer: dict[str, str]
) -> None:
    _, base = server
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def create(**changes: Any) -> str:
            resp = await client.post("/v1/incidents", json=incident(**changes), headers=writer)
            assert resp.status_code == 201, resp.text
            return str(resp.json()["id"])

        async with aconnect_sse(client, "GET", "/v1/stream", params=KHANAQIN) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            first = [await create(), await create(**FAR), await create()]
            events = await take(source.aiter_sse(), 2)
        assert [(e.event, orjson.loads(e.data)["id"]) for e in events] == [
            ("create", first[0]),
            ("create", first[2]),
        ]
        # Disconnected: what happens meanwhile is waiting for the stream.
        later = await create()
        await client.patch(f"/v1/incidents/{later}", json={"fatalities": 1}, headers=writer)
        await client.patch(f"/v1/incidents/{first[0]}", json=FAR, headers=writer)  # moves out
        await client.delete(f"/v1/incidents/{first[2]}", headers=writer)
        await create(**FAR)  # never inside: never streamed
        resumed_from = events[-1].id
        async with aconnect_sse(
            client, "GET", "/v1/stream", params=KHANAQIN, headers={"Last-Event-ID": resumed_from}
        ) as source:
            stream = source.aiter_sse()
            missed = await take(stream, 4)
            live = await create()
            (now,) = await take(stream, 1)
        seen = [
            (e.event, orjson.loads(e.data)["id"], orjson.loads(e.data)["version"]) for e in missed
        ]
        assert seen == [
            ("create", later, 1),
            ("update", later, 2),
            ("update", first[0], 2),
            ("delete", first[2], 2),
        ]
        assert orjson.loads(missed[-1].data)["deleted"] is True
        assert (now.event, orjson.loads(now.data)["id"]) == ("create", live)
        ids = [e.id for e in [*events, *missed, now]]
        assert len(set(ids)) == len(ids)
        # An id is a /v1/changes cursor: the feed continues from it.
        feed = await client.get("/v1/changes", params={"cursor": missed[-1].id})
        after = [c["id"] for c in feed.json()["items"]]
        assert live in after and first[2] not in after


async def test_a_new_stream_starts_now_even_after_an_idle_spell(
    server: tuple[Any, str], writer: dict[str, str]
) -> None:
    _, base = server
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async with aconnect_sse(client, "GET", "/v1/stream", params=KHANAQIN):
            pass  # one stream opened and closed: the hub then stops following the feed
        await asyncio.sleep(0.5)
        for _ in range(3):  # while nobody listens
            await client.post("/v1/incidents", json=incident(), headers=writer)
        async with aconnect_sse(client, "GET", "/v1/stream", params=KHANAQIN) as source:
            resp = await client.post("/v1/incidents", json=incident(), headers=writer)
            (first,) = await take(source.aiter_sse(), 1)
        assert orjson.loads(first.data)["id"] == resp.json()["id"]


async def test_bad_last_event_id_and_bad_filters_are_4xx(server: tuple[Any, str]) -> None:
    _, base = server
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        resp = await client.get("/v1/stream", headers={"Last-Event-ID": "forged"})
        assert resp.status_code == 400 and resp.json()["errors"][0]["field"] == "cursor"
        resp = await client.get("/v1/stream", params={"radius_km": 5})
        assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "radius_km"


async def test_heartbeat_comments_keep_an_idle_stream_open(server: tuple[Any, str]) -> None:
    _, base = server
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        async with client.stream("GET", "/v1/stream", params={"bbox": "0,0,1,1"}) as resp:
            comments = []

            async def read() -> None:
                async for line in resp.aiter_lines():
                    if line.startswith(":"):
                        comments.append(line)
                        if len(comments) == 2:
                            return

            await asyncio.wait_for(read(), 10)
    assert len(comments) == 2


async def test_shutdown_closes_open_streams(database_url: str) -> None:
    proc, base = start_server(database_url, WEBHOOK_WORKER="false", STREAM_HEARTBEAT_S="1")
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async with aconnect_sse(client, "GET", "/v1/stream", params=KHANAQIN) as source:
            proc.send_signal(signal.SIGTERM)

            async def drain() -> None:
                async for _ in source.aiter_sse():
                    pass

            await asyncio.wait_for(drain(), 15)  # the stream ends instead of hanging
    assert await asyncio.to_thread(proc.wait, 20) in (0, -signal.SIGTERM)
