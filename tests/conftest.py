"""Test fixtures: a real PostGIS database built by `alembic upgrade head`, the app over ASGI."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.auth.service import create_key
from app.cli import run_migrations
from app.core.config import Settings, to_plain_url
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
PEPPER = "test-pepper"
# The suite's secrets are fixed strings (a development machine's); servers the tests start
# inherit this. `tests/core/test_secrets.py` runs the service as production would.
os.environ.setdefault("ENVIRONMENT", "development")
BASE_URL = to_plain_url(
    os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/incidents")
)


def url_for_db(name: str) -> str:
    parts = urlsplit(BASE_URL)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


async def recreate_database(name: str) -> None:
    conn = await asyncpg.connect(url_for_db("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "key_pepper": PEPPER,
        "cursor_secret": "test-cursor-secret",
        "max_body_bytes": 256 * 1024,
        "max_bulk_body_bytes": 4 * 1024 * 1024,
        # Deliveries are the alerts tests' (their own app and servers, with a fast schedule).
        "webhook_worker": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def database_url() -> str:
    """A fresh database for this test run, migrated to head."""
    name = f"incidents_test_{os.getpid()}"
    asyncio.run(recreate_database(name))
    url = url_for_db(name)
    run_migrations("head", database_url=url)
    yield url

    async def drop() -> None:
        conn = await asyncpg.connect(url_for_db("postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection for assertions on what is really stored."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def _key(app: FastAPI, name: str, scopes: list[str]) -> str:
    async with app.state.db.write() as conn:
        key, _ = await create_key(conn, name=name, scopes=scopes, pepper=PEPPER)
    return key


@pytest.fixture(scope="session")
async def write_key(app: FastAPI) -> str:
    return await _key(app, "ingest", ["read", "write"])


@pytest.fixture(scope="session")
async def read_key(app: FastAPI) -> str:
    return await _key(app, "reader", ["read"])


@pytest.fixture(scope="session")
async def admin_key(app: FastAPI) -> str:
    return await _key(app, "admin", ["admin"])


@pytest.fixture
def writer(write_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {write_key}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    database_url: str,
    *args: str,
    cwd: Path = ROOT,
    secrets: dict[str, str] | None = None,
    **env: str,
) -> tuple[subprocess.Popen[bytes], str]:
    """`incidents serve` (with `args`, e.g. --workers 2) in a process of its own, run in
    `cwd` with settings `env` and `secrets` (default: the suite's pepper and cursor secret; {}
    leaves them to the environment's and `cwd`'s .env); (process, base URL)."""
    port = free_port()
    if secrets is None:
        secrets = {"KEY_PEPPER": PEPPER, "CURSOR_SECRET": "test-cursor-secret"}
    inherited = {k: v for k, v in os.environ.items() if k not in ("KEY_PEPPER", "CURSOR_SECRET")}
    environment = {
        **inherited,
        "DATABASE_URL": database_url,
        **secrets,
        "LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=environment,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[str]:
    """The real server (uvicorn, separate process) on the test database."""
    proc, base = start_server(database_url, LOG_LEVEL="warning", WEBHOOK_WORKER="false")
    yield base
    proc.terminate()
    proc.wait(timeout=20)


DARA = {
    "event_date": "2020-06-13",
    "event_type": "Violence against civilians",
    "sub_event_type": "Attack",
    "actor1": "Islamic State (Iraq)",
    "actor2": "Civilians (Iraq)",
    "civilian_targeting": True,
    "fatalities": 7,
    "country": "Iraq",
    "admin1": "Diyala",
    "admin2": "Khanaqin",
    "location": "Dara",
    "latitude": 34.415,
    "longitude": 45.335,
    "geo_precision": 2,
    "source": "Rudaw",
    "notes": "ISIS militants stormed the village of Dara, killing six Kakai Kurds and a member "
    "of the security forces.",
}


def incident(**changes: object) -> dict[str, object]:
    body: dict[str, object] = dict(DARA)
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture(scope="session")
async def gazetteer(database_url: str) -> dict[str, float]:
    """The packaged GeoNames gazetteer, loaded once per run by the real loader."""
    from app.places.loader import load_places
    from app.places.sources import iter_packaged_places

    conn = await asyncpg.connect(database_url, server_settings={"statement_timeout": "0"})
    try:
        report = await load_places(conn, iter_packaged_places())
    finally:
        await conn.close()
    return {"rows": report.rows, "seconds": report.seconds}


@pytest.fixture
async def clean_incidents(db: asyncpg.Connection) -> None:
    """An empty incident table, for tests that count exact results. A live server of an earlier
    test may still be reading (its rollup compaction, a history read): TRUNCATE then waits, or
    loses a deadlock against a reader that locks the tables in another order; it is retried."""
    await truncate_incidents(db)


async def truncate_incidents(db: asyncpg.Connection, *more: str) -> None:
    """TRUNCATE incidents, revisions and the tables `more` names, retried when it loses a
    deadlock (`clean_incidents`)."""
    for attempt in range(5):
        try:
            await db.execute(", ".join(["TRUNCATE incidents", "incident_revisions", *more]))
            return
        except asyncpg.exceptions.DeadlockDetectedError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.2)


async def insert_incidents(db: asyncpg.Connection, rows: list[dict[str, object]]) -> list[int]:
    """Inserts incidents directly (test setup), returning their ids in order."""
    ids = []
    for row in rows:
        ids.append(
            await db.fetchval(
                """
                INSERT INTO incidents (event_date, event_type, sub_event_type, disorder_type,
                    actor1, actor2, fatalities, country, country_code, admin1, admin2, location,
                    notes, geom, external_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                        ST_SetSRID(ST_MakePoint($14, $15), 4326), $16)
                RETURNING id
                """,
                row.get("event_date", __import__("datetime").date(2024, 3, 1)),
                row.get("event_type", "Battles"),
                row.get("sub_event_type", "Armed clash"),
                row.get("disorder_type", "Political violence"),
                row.get("actor1"),
                row.get("actor2"),
                row.get("fatalities", 0),
                row.get("country", "Iraq"),
                row.get("country_code", "IRQ"),
                row.get("admin1"),
                row.get("admin2"),
                row.get("location"),
                row.get("notes"),
                row["longitude"],
                row["latitude"],
                row.get("external_id"),
            )
        )
    return ids


@pytest.fixture(scope="session")
async def boundaries(database_url: str) -> dict[str, float]:
    """Natural Earth countries and admin-1 areas, loaded once per run by the real loader."""
    from app.areas.loader import load_boundaries

    conn = await asyncpg.connect(database_url, server_settings={"statement_timeout": "0"})
    try:
        report = await load_boundaries(conn)
    finally:
        await conn.close()
    return {"countries": report.countries, "admin1": report.admin1}
