"""Keeping the dashboard rollups compact.

Writes append delta rows to `incident_rollup_month` and `incident_tile_cells` (migration 0006);
readers sum them, so results are exact at any moment. Folding the deltas into one row per key
keeps those reads small: after each bulk load, at the end of `incidents import`, and every
`ROLLUP_COMPACT_INTERVAL_S` seconds in the API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import asyncpg

from app.core.db import Database
from app.incidents.filters import SearchFilter

log = logging.getLogger(__name__)


async def compact(conn: asyncpg.Connection) -> int:
    """Folds pending deltas; returns how many rows were folded."""
    return int(
        await conn.fetchval("SELECT incident_rollups_compact() + incident_grid_cells_compact()")
    )


DateRange = tuple[dt.date, dt.date]


def beyond_rollups(f: SearchFilter) -> bool:
    """Filters no rollup carries: a place or radius, an area or polygon, actors, text, a
    fatality floor. (The bbox and attribute filters each rollup handles itself.)"""
    raw = f.raw
    return (
        f.near is not None
        or f.area is not None
        or f.geometry_json is not None
        or f.actor_pattern is not None
        or bool(raw.actors)
        or raw.min_fatalities is not None
        or bool(raw.q)
    )


def split_months(
    start: dt.date | None, end: dt.date | None
) -> tuple[dt.date | None, dt.date | None, list[DateRange]] | None:
    """[start, end] as whole months [lo, hi) for the monthly rollups plus the partial-month
    days at either end (inclusive ranges, read from the incidents). None bounds are open.
    None when the range holds no whole month."""
    if (start is not None and start.year >= dt.MAXYEAR) or (
        end is not None and end.year >= dt.MAXYEAR
    ):
        return None  # no next month to bound by; the incidents answer directly
    lo = None if start is None else (start if start.day == 1 else _next_month(start))
    hi = None if end is None else (end + dt.timedelta(days=1)).replace(day=1)
    if lo is not None and hi is not None and lo >= hi:
        return None
    edges: list[DateRange] = []
    if start is not None and lo is not None and start < lo:
        edges.append((start, lo - dt.timedelta(days=1)))
    if end is not None and hi is not None and hi <= end:
        edges.append((hi, end))
    return lo, hi, edges


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


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
            async with db.acquire() as conn:
                await compact(conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be down; try again next round
            log.warning("rollup compaction failed: %s", exc)
