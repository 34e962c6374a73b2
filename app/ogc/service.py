"""What the OGC surface asks of the store beyond the shared search: the collection's extent
and `numberMatched` — both from the rollups, never by scanning or counting every page."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import asyncpg

from app.search.filters import SearchFilter
from app.search.query import Params, attribute_clauses, build_where
from app.search.rollups import MONTHLY, split_months

# Web Mercator zoom-14 cells (incident_tile_cells, migration 0006): their edges in lon/lat.
_CELLS = 2**14
_MAX_MERCATOR_LAT = 85.0511287798066

EXTENT_SQL = """
SELECT (SELECT min(cx) FROM incident_tile_cells) AS cx0,
       (SELECT max(cx) FROM incident_tile_cells) AS cx1,
       (SELECT min(cy) FROM incident_tile_cells) AS cy0,
       (SELECT max(cy) FROM incident_tile_cells) AS cy1,
       (SELECT min(event_date) FROM incidents WHERE deleted_at IS NULL) AS first_day,
       (SELECT max(event_date) FROM incidents WHERE deleted_at IS NULL) AS last_day
"""
# Incidents beyond Web Mercator's latitudes are in no tile cell: their extent from the index.
POLAR_SQL = """
SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (
    SELECT ST_Extent(geom) AS e FROM incidents
    WHERE deleted_at IS NULL AND (geom && ST_MakeEnvelope(-180, $1, 180, 90, 4326)
                                  OR geom && ST_MakeEnvelope(-180, -90, 180, -$1, 4326))
) s WHERE e IS NOT NULL
"""


def _lon(cx: int) -> float:
    return cx / _CELLS * 360 - 180


def _lat(cy: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * cy / _CELLS))))


async def extent(conn: asyncpg.Connection) -> dict[str, Any]:
    """`extent` of the collection: a bbox containing every live incident (the edges of the
    occupied zoom-14 cells, widened by any polar incident) and the first and last day."""
    row = await conn.fetchrow(EXTENT_SQL)
    bbox: list[float] | None = None
    if row["cx0"] is not None:
        # Rows are counted from the north: cy0 is the northern edge of the top cell.
        bbox = [_lon(row["cx0"]), _lat(row["cy1"] + 1), _lon(row["cx1"] + 1), _lat(row["cy0"])]
    polar = await conn.fetchrow(POLAR_SQL, _MAX_MERCATOR_LAT)
    if polar is not None:
        x0, y0, x1, y1 = (float(v) for v in polar)
        bbox = (
            [x0, y0, x1, y1]
            if bbox is None
            else [min(bbox[0], x0), min(bbox[1], y0), max(bbox[2], x1), max(bbox[3], y1)]
        )
    interval = [
        _day(row["first_day"]),
        _day(row["last_day"]),
    ]
    return {
        "spatial": {
            "bbox": [[round(v, 6) for v in (bbox or [-180.0, -90.0, 180.0, 90.0])]],
            "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        },
        "temporal": {
            "interval": [interval],
            "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
        },
    }


def _day(day: dt.date | None) -> str | None:
    return None if day is None else f"{day.isoformat()}T00:00:00Z"


async def number_matched(conn: asyncpg.Connection, f: SearchFilter) -> int | None:
    """The exact number of matching incidents when the monthly rollup answers the filter
    (whole months from the rollup, partial months at either end from the date index); None
    when it cannot, so the response leaves `numberMatched` out instead of counting."""
    if not MONTHLY.serves(f):
        return None
    split = split_months(f.raw.start, f.raw.end)
    p = Params()
    if split is None:
        if f.raw.start is None and f.raw.end is None:
            split = (None, None, [])
        else:
            return None  # under a month: a count is cheap but not free; leave it out
    lo, hi, edges = split
    clauses = attribute_clauses(f, p, "r", blank_is_null=True)
    if lo is not None:
        clauses.append(f"r.month >= {p.add(lo)}")
    if hi is not None:
        clauses.append(f"r.month < {p.add(hi)}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    parts = [f"SELECT coalesce(sum(r.incidents), 0) AS n FROM incident_rollup_month r {where}"]
    for start, end in edges:
        edge = build_where(f.between(start, end), p)
        parts.append(f"SELECT count(*) AS n FROM incidents i WHERE {edge.sql}")
    sql = f"SELECT sum(n)::bigint FROM ({' UNION ALL '.join(parts)}) u"
    return int(await conn.fetchval(sql, *p.values))
