from __future__ import annotations

import httpx

from tests.conftest import make_settings


async def test_healthz(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


async def test_readyz_checks_migration_head(client: httpx.AsyncClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "ready"


async def test_readyz_fails_when_database_unreachable() -> None:
    from app.main import create_app

    app = create_app(
        make_settings("postgresql://postgres@127.0.0.1:1/none", db_connect_timeout_s=1)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            resp = await c.get("/readyz")
            assert resp.status_code == 503
            assert resp.headers["content-type"] == "application/problem+json"
            resp = await c.get("/v1/incidents/1")
            assert resp.status_code == 503
            assert "Traceback" not in resp.text


async def test_readyz_fails_when_not_migrated(database_url: str) -> None:
    import asyncpg

    from app.main import create_app
    from tests.conftest import recreate_database, url_for_db

    await recreate_database("incidents_test_unmigrated")
    app = create_app(make_settings(url_for_db("incidents_test_unmigrated")))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/readyz")).status_code == 503
    conn = await asyncpg.connect(url_for_db("postgres"))
    await conn.execute('DROP DATABASE IF EXISTS "incidents_test_unmigrated" WITH (FORCE)')
    await conn.close()


async def test_openapi_documents_every_endpoint_with_examples(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/v1/incidents",
        "/v1/incidents/{incident_id}",
        "/v1/incidents/{incident_id}/revisions",
        "/v1/taxonomy",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    incident_in = schema["components"]["schemas"]["IncidentIn"]
    assert incident_in.get("examples"), "IncidentIn has an example"
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_security_headers(client: httpx.AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in resp.headers


async def test_metrics(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert "incidents_http_requests_total" in resp.text
