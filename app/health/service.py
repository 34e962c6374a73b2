"""Readiness: is the database reachable and migrated to the code's head?"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from app.core.db import Database
from app.core.errors import ServiceUnavailable

REPO_ROOT = Path(__file__).resolve().parents[2]


@lru_cache
def migration_head() -> str | None:
    ini = REPO_ROOT / "alembic.ini"
    if not ini.exists():
        return None
    return ScriptDirectory.from_config(Config(str(ini))).get_current_head()


async def migration_state(db: Database) -> str:
    """The database's migration, if it is the head; else a 503."""
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
    return str(current)
