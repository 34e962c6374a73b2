"""Writes need a key with the right scope; keys are hashed; revocation is immediate."""

from __future__ import annotations

import hashlib
import re

import asyncpg
import httpx
from fastapi import FastAPI

from app.auth.service import hash_key
from tests.conftest import PEPPER, incident


async def test_write_without_key_is_401(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/incidents", json=incident())
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_bad_keys_are_401(client: httpx.AsyncClient) -> None:
    for header in ("Bearer nope", "Bearer ci_0123456789_" + "x" * 43, "Basic abc", "Bearer"):
        resp = await client.post(
            "/v1/incidents", json=incident(), headers={"Authorization": header}
        )
        assert resp.status_code == 401, header


async def test_read_key_cannot_write(client: httpx.AsyncClient, read_key: str) -> None:
    resp = await client.post(
        "/v1/incidents", json=incident(), headers={"Authorization": f"Bearer {read_key}"}
    )
    assert resp.status_code == 403
    assert "write" in resp.json()["detail"]


async def test_read_key_can_read(client: httpx.AsyncClient, read_key: str) -> None:
    resp = await client.get("/v1/taxonomy", headers={"Authorization": f"Bearer {read_key}"})
    assert resp.status_code == 200


async def test_admin_key_can_write(client: httpx.AsyncClient, admin_key: str) -> None:
    resp = await client.post(
        "/v1/incidents", json=incident(), headers={"Authorization": f"Bearer {admin_key}"}
    )
    assert resp.status_code == 201


async def test_revoked_key_stops_at_once(
    client: httpx.AsyncClient, app: FastAPI, db: asyncpg.Connection
) -> None:
    from app.auth.service import create_key, revoke_key

    async with app.state.db.write() as conn:
        key, key_id = await create_key(conn, name="temp", scopes=["write"], pepper=PEPPER)
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.post("/v1/incidents", json=incident(), headers=headers)).status_code == 201
    async with app.state.db.write() as conn:
        assert await revoke_key(conn, key_id=key_id, name=None) == 1
    assert (await client.post("/v1/incidents", json=incident(), headers=headers)).status_code == 401


async def test_keys_are_stored_hashed(write_key: str, db: asyncpg.Connection) -> None:
    rows = await db.fetch("SELECT * FROM api_keys")
    dumped = repr([dict(r) for r in rows])
    secret = write_key.split("_", 2)[2]
    assert write_key not in dumped and secret not in dumped
    assert hashlib.sha256(write_key.encode()).hexdigest() not in dumped  # peppered, not plain
    prefix = write_key.split("_")[1]
    stored = await db.fetchval("SELECT key_hash FROM api_keys WHERE prefix = $1", prefix)
    assert stored == hash_key(write_key, PEPPER)


async def test_anonymous_reads_can_be_turned_off(database_url: str) -> None:
    from app.main import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database_url, allow_anonymous_read=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/v1/taxonomy")).status_code == 401
            assert (await c.get("/healthz")).status_code == 200


async def test_every_write_route_refuses_read_keys_and_anonymous(
    client: httpx.AsyncClient, read_key: str
) -> None:
    """Walks the route table (the OpenAPI document): every write route answers 401 without a key
    and 403 to a read-only key, whatever the body."""
    schema = (await client.get("/openapi.json")).json()
    reads_with_body = {("post", "/v1/incidents/search")}
    checked = 0
    for path, item in schema["paths"].items():
        for method in ("post", "put", "patch", "delete"):
            if method not in item or (method, path) in reads_with_body:
                continue
            url = re.sub(r"\{[^}]+\}", "1", path)
            for headers, expected in (({}, 401), ({"Authorization": f"Bearer {read_key}"}, 403)):
                resp = await client.request(
                    method.upper(),
                    url,
                    content=b"{}",
                    headers={**headers, "Content-Type": "application/json"},
                )
                assert resp.status_code == expected, (method, path, resp.text)
            checked += 1
    assert checked >= 3
