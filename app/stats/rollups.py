"""Keeping the dashboard rollups compact.

Writes append delta rows to `incident_rollup_month`, `incident_tile_cells` and
`incident_grid_cells` (migrations 0006, 0007); readers sum them, so results are exact at any
moment. Folding the deltas into one row per key keeps those reads small: after each bulk load,
at the end of `incidents import`, and every `ROLLUP_COMPACT_INTERVAL_S` seconds in the API.
Which rollup answers which filter: `app.search.rollups`.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from app.core.db import Database

log = logging.getLogger(__name__)


async def compact(conn: asyncpg.Connection) -> int:
    """Folds pending deltas; returns how many rows were folded."""
    return int(
        await conn.fetchval("SELECT incident_rollups_compact() + incident_grid_cells_compact()")
    )


async def compact_quietly(conn: asyncpg.Connection) -> None:
    """After a write has committed: a failure here must not turn its success into an error."""
    try:
        await compact(conn)
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
        log.warning("rollup compaction skipped: %s", exc)


async def compact_forever(db: Database, interval_s: float) -> None:
    """Background task of the API; survives database outages, stops when cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            async with db.read() as conn:
                await compact(conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be down; try again next round
            log.warning("rollup compaction failed: %s", exc)
