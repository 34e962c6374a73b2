"""SIGTERM lets in-flight requests finish; a bulk upload cut off midway leaves nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess

import asyncpg
import httpx
import pytest

from tests.conftest import incident, start_server

pytestmark = pytest.mark.usefixtures("clean_incidents")


def start(database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    return start_server(database_url)


def big_body(rows: int, prefix: str) -> str:
    return "\n".join(
        json.dumps(incident(external_id=f"{prefix}{n}", notes="x" * 200)) for n in range(rows)
    )


def upload_in_background(
    client: httpx.AsyncClient, write_key: str, prefix: str
) -> asyncio.Task[httpx.Response]:
    """A 20,000-row NDJSON bulk upload, external ids starting with `prefix`, started now."""
    headers = {"Authorization": f"Bearer {write_key}", "Content-Type": "application/x-ndjson"}
    return asyncio.create_task(
        client.post("/v1/incidents/bulk", content=big_body(20000, prefix), headers=headers)
    )


async def test_sigterm_finishes_the_request_in_flight(
    database_url: str, write_key: str, db: asyncpg.Connection
) -> None:
    proc, base = start(database_url)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        upload = upload_in_background(client, write_key, "T")
        await asyncio.sleep(0.8)
        proc.send_signal(signal.SIGTERM)
        resp = await upload
    assert resp.status_code == 200, resp.text
    assert resp.json()["inserted"] == 20000
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert await db.fetchval("SELECT count(*) FROM incidents WHERE external_id LIKE 'T%'") == 20000


async def test_killed_bulk_upload_leaves_no_partial_batch(
    database_url: str, write_key: str, db: asyncpg.Connection
) -> None:
    proc, base = start(database_url)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        upload = upload_in_background(client, write_key, "K")
        # Wait until the server is writing (some batches upserted, not committed), then kill.
        for _ in range(200):
            busy = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%incident_stage%' "
                "AND state = 'active'"
            )
            if busy:
                break
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        with pytest.raises(httpx.HTTPError):
            await upload
    proc.wait(timeout=10)
    await asyncio.sleep(0.5)
    assert await db.fetchval("SELECT count(*) FROM incidents WHERE external_id LIKE 'K%'") == 0
