"""The outbox survives the process: an API killed (SIGKILL) after the write committed, with
the webhook in flight, delivers it after a restart, with the same webhook-id."""

from __future__ import annotations

import asyncio
import threading

import asyncpg
import httpx

from tests.alerts.receiver import Plan, Receiver, eventually
from tests.conftest import incident, start_server

SETTINGS = {
    "WEBHOOK_WORKER": "true",
    "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "WEBHOOK_TIMEOUT_S": "2",
    "WEBHOOK_POLL_S": "0.1",
}


async def test_killed_api_delivers_after_restart(
    database_url: str, writer: dict[str, str], receiver: Receiver, db: asyncpg.Connection
) -> None:
    hold = threading.Event()
    receiver.plans["/crash"] = Plan(hold=hold)
    proc, base = start_server(database_url, **SETTINGS)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            sub = await client.post(
                "/v1/subscriptions",
                json={
                    "name": "crash",
                    "filter": {"near": "34.348,45.391", "radius_km": 25},
                    "webhook_url": receiver.url("/crash"),
                },
                headers=writer,
            )
            assert sub.status_code == 201, sub.text
            secret = sub.json()["secret"]
            created = await client.post("/v1/incidents", json=incident(), headers=writer)
            assert created.status_code == 201  # committed, with its delivery
        await eventually(lambda: receiver.at("/crash"))  # the attempt is in flight...
        proc.kill()  # ...when the process dies
        await asyncio.to_thread(proc.wait, 10)
    finally:
        hold.set()
        if proc.poll() is None:
            proc.kill()
    row = await db.fetchrow(
        "SELECT status, attempts FROM alert_deliveries WHERE subscription_id = $1",
        sub.json()["id"],
    )
    assert (row["status"], row["attempts"]) == ("pending", 0)

    proc, base = start_server(database_url, **SETTINGS)
    try:
        await eventually(lambda: len(receiver.at("/crash")) >= 2, within=30)

        async def delivered() -> bool:
            status = await db.fetchval(
                "SELECT status FROM alert_deliveries WHERE subscription_id = $1",
                sub.json()["id"],
            )
            return bool(status == "delivered")

        await eventually(delivered)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
    first, again = receiver.at("/crash")[:2]
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert again.verify(secret)["change"]["id"] == str(created.json()["id"])
