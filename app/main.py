"""The ASGI app: `app.main:app`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.acled.router import router as acled_router
from app.actors.router import router as actors_router
from app.alerts.delivery import DeliveryWorker
from app.alerts.router import router as alerts_router
from app.alerts.stream import StreamHub
from app.areas.router import router as areas_router
from app.auth.deps import guard
from app.auth.ratelimit import RateLimiter
from app.changes.router import router as changes_router
from app.core import logs
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.core.errors import COMMON_PROBLEMS, install_error_handlers
from app.core.middleware import AdmissionMiddleware, BodyLimitMiddleware, ResponseMiddleware
from app.core.secrets import require as require_secrets
from app.health.router import router as health_router
from app.incidents.router import router as incidents_router
from app.ogc.router import router as ogc_router
from app.places.router import router as places_router
from app.search.router import router as incident_search_router
from app.stats.rollups import compact_forever
from app.stats.router import router as stats_router
from app.taxonomy.router import router as taxonomy_router
from app.tiles.router import router as tiles_router
from app.web.router import mount_assets
from app.web.router import router as web_router

DESCRIPTION = """
Geolocated armed-conflict incidents on PostGIS: radius, polygon and nearest queries, history,
a change feed, bulk ingest, aggregates and vector tiles. Field names follow ACLED's.

**Auth**: `Authorization: Bearer <key>`. Writes need a key with the `write` scope; reads are
anonymous unless `ALLOW_ANONYMOUS_READ=false`. Subscriptions need the `alerts` (or `write`)
scope; a key sees its own.

**Alerts**: `POST /v1/subscriptions` sends every matching create, update and delete to a
webhook, signed as Standard Webhooks specify (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), retried for about a day; `GET /v1/stream` is the same as Server-Sent
Events.

**Errors** are `application/problem+json` (RFC 9457) with an `errors` list naming each bad field.

Place data: GeoNames (CC BY 4.0). Taxonomy: ACLED Codebook.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level.upper())
    logs.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        require_secrets(settings)  # before anything is served
        app.state.db = Database(settings)
        app.state.streams = StreamHub(app.state.db, settings)
        worker = delivering = None
        if settings.webhook_worker:
            worker = DeliveryWorker(app.state.db, settings)
            delivering = asyncio.create_task(worker.run())
        app.state.webhook_worker = worker
        compactor = None
        if settings.rollup_compact_interval_s > 0:
            compactor = asyncio.create_task(
                compact_forever(app.state.db, settings.rollup_compact_interval_s)
            )
        # What startup built (modules, routes, schemas: several hundred thousand objects)
        # moves out of the collector's generations: full collections scan only what requests
        # allocate since, instead of pausing every few seconds to walk all of it.
        gc.freeze()
        try:
            yield
        finally:
            await app.state.streams.shutdown()
            if worker is not None and delivering is not None:
                worker.stop()
                await delivering
            if compactor is not None:
                compactor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await compactor
            await app.state.db.close()

    app = FastAPI(
        title="Conflict incidents API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        license_info={"name": "MIT"},
    )
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter()

    # Every /v1 route needs at least read access (anonymous when the setting allows it).
    v1 = APIRouter(
        prefix="/v1",
        dependencies=[Depends(guard)],
        responses=COMMON_PROBLEMS,
    )
    v1.include_router(incident_search_router)
    v1.include_router(incidents_router)
    v1.include_router(places_router)
    v1.include_router(areas_router)
    v1.include_router(actors_router)
    v1.include_router(changes_router)
    v1.include_router(stats_router)
    v1.include_router(tiles_router)
    v1.include_router(taxonomy_router)
    v1.include_router(alerts_router)
    app.include_router(v1)
    app.include_router(ogc_router)
    app.include_router(acled_router)
    app.include_router(health_router)
    app.include_router(web_router)
    mount_assets(app)

    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.max_body_bytes,
        bulk_limit=settings.max_bulk_body_bytes,
        read_timeout_s=settings.body_read_timeout_s,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match"],
            expose_headers=["ETag", "Location", "Link"],
        )
    if settings.max_in_flight > 0:
        app.add_middleware(AdmissionMiddleware, limit=settings.max_in_flight)
    app.add_middleware(ResponseMiddleware)
    return app


app = create_app()
