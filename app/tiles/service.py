"""Mapbox Vector Tiles (layer `incidents`) built by PostGIS, with the shared search filter.

Rule: below zoom CLUSTER_BELOW_ZOOM incidents are aggregated into a 64x64 grid per tile
(one point per occupied cell, at the cell's mean position, with `count` and `fatalities`);
without filters those cells are read from `incident_tile_cells` (zoom-14 cells kept current by
the write path: a 64x64 cell of a zoom-z tile is a block of 2^(8-z) x 2^(8-z) of them);
from that zoom on each incident is a feature (id, event_date, event_type, fatalities), newest
first, at most MAX_FEATURES per tile.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from app.search.filters import SearchFilter
from app.search.query import Params, build_where, source_sql
from app.search.rollups import TILE_CELLS

CLUSTER_BELOW_ZOOM = 9
CLUSTER_CELLS = 64
MAX_FEATURES = 5000
EXTENT = 4096

POINTS_SQL = """
WITH b AS (SELECT ST_TileEnvelope({z}, {x}, {y}) AS merc)
SELECT ST_AsMVT(t, 'incidents', {extent}, 'geom') FROM (
    SELECT ST_AsMVTGeom(ST_Transform(i.geom, 3857), b.merc, {extent}, 64, true) AS geom,
           i.id::text AS id, to_char(i.event_date, 'YYYY-MM-DD') AS event_date,
           i.event_type, i.fatalities
    FROM {source}, b
    WHERE i.geom && ST_Transform(b.merc, 4326) AND {where}
    ORDER BY i.event_date DESC, i.id DESC
    LIMIT {limit}
) t
"""

CLUSTERS_SQL = """
WITH b AS (SELECT ST_TileEnvelope({z}, {x}, {y}) AS merc),
pts AS (
    SELECT ST_Transform(i.geom, 3857) AS g, i.fatalities
    FROM {source}, b
    WHERE i.geom && ST_Transform(b.merc, 4326) AND {where}
),
cells AS (
    SELECT floor((ST_X(g) - ST_XMin(b.merc)) / (ST_XMax(b.merc) - ST_XMin(b.merc)) * {cells})
               AS cx,
           floor((ST_Y(g) - ST_YMin(b.merc)) / (ST_YMax(b.merc) - ST_YMin(b.merc)) * {cells})
               AS cy,
           ST_X(g) AS px, ST_Y(g) AS py, fatalities
    FROM pts, b
)
SELECT ST_AsMVT(t, 'incidents', {extent}, 'geom') FROM (
    SELECT ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(avg(px), avg(py)), 3857), b.merc, {extent}, 64,
                        true) AS geom,
           count(*)::int AS count, sum(fatalities)::int AS fatalities, true AS cluster
    FROM cells, b
    GROUP BY cx, cy, b.merc
) t
"""


# The same clusters from the rollup: a tile of zoom z covers zoom-14 cells
# [x * 64 * 2^(8-z), (x + 1) * 64 * 2^(8-z)) in each axis (y counted from the north, as tiles).
ROLLUP_CLUSTERS_SQL = """
WITH b AS (SELECT ST_TileEnvelope({z}, {x}, {y}) AS merc)
SELECT ST_AsMVT(t, 'incidents', {extent}, 'geom') FROM (
    SELECT ST_AsMVTGeom(ST_SetSRID(ST_MakePoint(sum(c.sum_x) / sum(c.incidents),
                                                sum(c.sum_y) / sum(c.incidents)), 3857),
                        b.merc, {extent}, 64, true) AS geom,
           sum(c.incidents)::int AS count, sum(c.fatalities)::int AS fatalities, true AS cluster
    FROM incident_tile_cells c, b
    WHERE c.cx >= {x} * {span} AND c.cx < ({x} + 1) * {span}
      AND c.cy >= {y} * {span} AND c.cy < ({y} + 1) * {span}
    GROUP BY c.cx / {shrink}, c.cy / {shrink}, b.merc
    HAVING sum(c.incidents) > 0
) t
"""
ROLLUP_LEVEL = 14


def tile_query(f: SearchFilter, z: int, x: int, y: int) -> tuple[str, list[Any]]:
    """The SQL and parameters of one tile (the benchmark's floor runs exactly this)."""
    p = Params()
    if z < CLUSTER_BELOW_ZOOM and TILE_CELLS.serves(f):
        shrink = 2 ** (ROLLUP_LEVEL - 6 - z)  # zoom-14 cells per cluster cell, per axis
        sql = ROLLUP_CLUSTERS_SQL.format(
            z=p.add(z),
            x=p.add(x),
            y=p.add(y),
            span=p.add(shrink * CLUSTER_CELLS),
            shrink=p.add(shrink),
            extent=EXTENT,
        )
        return sql, p.values
    where = build_where(f, p)
    template = CLUSTERS_SQL if z < CLUSTER_BELOW_ZOOM else POINTS_SQL
    sql = template.format(
        z=p.add(z),
        x=p.add(x),
        y=p.add(y),
        extent=EXTENT,
        cells=CLUSTER_CELLS,
        limit=MAX_FEATURES,
        where=where.sql,
        source=source_sql(f, p),
    )
    return sql, p.values


async def tile(conn: asyncpg.Connection, f: SearchFilter, z: int, x: int, y: int) -> bytes:
    sql, values = tile_query(f, z, x, y)
    data = await conn.fetchval(sql, *values)
    return bytes(data or b"")


async def data_version(conn: asyncpg.Connection) -> int:
    """Changes whenever any incident changes: the newest revision's sequence number."""
    return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM incident_revisions"))
