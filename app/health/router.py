"""Liveness, readiness and metrics, outside /v1."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.core.deps import DbDep
from app.core.errors import problem_doc
from app.health.service import migration_state

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and migrated to head",
    responses={503: problem_doc("Database unreachable or not migrated")},
)
async def readyz(db: DbDep) -> dict[str, str]:
    return {"status": "ready", "migration": await migration_state(db)}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(content=generate_latest(), media_type=CONTENT_TYPE_LATEST)
