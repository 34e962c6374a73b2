"""Liveness, readiness and metrics, outside /v1."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.core.deps import DbDep
from app.core.errors import ServiceUnavailable, problem_doc

router = APIRouter(tags=["health"])

REPO_ROOT = Path(__file__).resolve().parents[2]


@lru_cache
def migration_head() -> str | None:
    ini = REPO_ROOT / "alembic.ini"
    if not ini.exists():
        return None
    return ScriptDirectory.from_config(Config(str(ini))).get_current_head()


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and migrated to head",
    responses={503: problem_doc("Database unreachable or not migrated")},
)
async def readyz(db: DbDep) -> dict[str, str]:
    head = migration_head()
    try:
        async with db.read() as conn:
            current = await conn.fetchval("SELECT version_num FROM alembic_version LIMIT 1")
    except ServiceUnavailable:
        raise
    except Exception as exc:  # undefined table, connection lost mid-query, ...
        raise ServiceUnavailable("The database is not reachable or not migrated.") from exc
    if head is not None and current != head:
        raise ServiceUnavailable(
            f"The database is at migration {current}, the code expects {head}; "
            "run `incidents migrate`."
        )
    return {"status": "ready", "migration": str(current)}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(content=generate_latest(), media_type=CONTENT_TYPE_LATEST)
