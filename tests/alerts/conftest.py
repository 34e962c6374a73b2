"""Alerts fixtures: an app whose worker delivers (fast retry schedule, the receiver's
127.0.0.1 allowed), a real receiver, a key with the `alerts` scope."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.alerts.receiver import Receiver
from tests.conftest import _key, make_settings

FAST = {
    "webhook_worker": True,
    "webhook_allowed_hosts": ["127.0.0.1"],
    "webhook_retry_schedule_s": [0.3] * 9,
    "webhook_poll_s": 0.1,
    "webhook_timeout_s": 2.0,
    "stream_poll_s": 0.1,
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
async def alerts_app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(database_url, **FAST))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def api(alerts_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=alerts_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture(scope="module")
async def alerts_key(alerts_app: FastAPI) -> str:
    return await _key(alerts_app, "newsroom", ["alerts"])


@pytest.fixture
def subscriber(alerts_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {alerts_key}"}


@pytest.fixture(autouse=True)
async def no_subscriptions(db: asyncpg.Connection) -> AsyncIterator[None]:
    """Each test starts and ends without subscriptions (and so without deliveries)."""
    clear = "; ".join(
        f"DELETE FROM {table}"
        for table in ("alert_matches", "alert_deliveries", "alert_subscriptions")
    )
    await db.execute(clear)
    yield
    await db.execute(clear)
