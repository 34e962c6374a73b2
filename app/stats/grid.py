"""Equal-area hexagon grid: counts per flat-topped hexagon on EPSG:6933 (metres).

A point's hexagon is `incident_hex_q/r(x / edge, y / edge)` (SQL functions, migration 0007).
For edges of 10, 25, 50 and 100 km with at most a bbox and dates as filters, whole months
come from `incident_grid_cells` (kept current by the write path): a hexagon lying wholly inside
the bbox takes its rollup counts; the incidents of hexagons cut by the bbox's edge, found in a
strip along that edge, and those of partial months are counted from the incidents. The answer
is the same either way (tests compare the two).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import asyncpg

from app.core.errors import Unprocessable, field_error
from app.core.geo import Envelope
from app.search.filters import SearchFilter
from app.search.query import Params, build_where, source_sql
from app.search.rollups import GRID, split_months

ROLLUP_EDGES_KM = (10.0, 25.0, 50.0, 100.0)
MAX_CELLS = 500_000

# The hexagon of each matching incident. OFFSET 0 keeps each level a subquery: the hexagon
# functions then see plain columns (and are inlined), and the projection and the hexagon are
# computed once per incident, not once per reference.
POINT_CELLS_SQL = """
SELECT incident_hex_q(x, y) AS cq, incident_hex_r(x, y) AS cr, fatalities FROM (
    SELECT ST_X(g) / {size} AS x, ST_Y(g) / {size} AS y, fatalities FROM (
        SELECT ST_Transform(i.geom, 6933) AS g, i.fatalities FROM {source} WHERE {where}
    ) s OFFSET 0
) pts OFFSET 0
"""

# A hexagon's centre in EPSG:6933 metres ({dx} = 1.5 edges, {dy} = sqrt(3) edges).
CENTRE_X = "({q} * {dx})"
CENTRE_Y = "(({r} + {q} / 2.0::float8) * {dy})"

# Whether a hexagon lies wholly inside the bbox (`rect`: the bbox in EPSG:6933, where it stays
# a rectangle). A flat-topped hexagon reaches {s} (one edge) left and right of its centre and
# {h} (sqrt(3) / 2 edges) above and below.
INSIDE_SQL = (
    "({x} - {s} >= rect.x0 AND {x} + {s} <= rect.x1 AND {y} - {h} >= rect.y0 "
    "AND {y} + {h} <= rect.y1)"
)

# Whether a hexagon's bounding box meets the bbox at all.
TOUCHES_SQL = (
    "({x} + {s} >= rect.x0 AND {x} - {s} <= rect.x1 AND {y} + {h} >= rect.y0 "
    "AND {y} - {h} <= rect.y1)"
)

# Hexagons with incidents in the months that the bbox's edge cuts, each with its bounding box
# in lon/lat (one metre wider: the point test decides) for an index lookup.
CUT_CELLS_SQL = """
SELECT q, r, ST_Transform(ST_MakeEnvelope({x} - {s} - 1, {y} - {h} - 1, {x} + {s} + 1,
                                          {y} + {h} + 1, 6933), 4326) AS envelope
FROM (SELECT DISTINCT g.q, g.r FROM incident_grid_cells g, rect
      WHERE {months} AND NOT {inside} AND {touches}) k
"""

# `counted` stops one hexagon past the limit: a grid with more non-empty hexagons than that is
# refused (`fits` false) before any polygon is built.
FEATURES_SQL = """
WITH {rect}counted AS MATERIALIZED (
    SELECT * FROM ({counted}) c LIMIT {max_cells} + 1
), shaped AS (
    SELECT cq, cr, incidents, fatalities,
           ST_Transform(ST_MakePolygon(ST_MakeLine(ARRAY(
               SELECT ST_SetSRID(ST_MakePoint(
                   {size} * (1.5 * cq + cos(radians(60 * k))),
                   {size} * (sqrt(3) * (cr + cq / 2.0) + sin(radians(60 * k)))), 6933)
               FROM generate_series(0, 6) k ORDER BY k))), 4326) AS hex
    FROM counted WHERE (SELECT count(*) FROM counted) <= {max_cells}
)
SELECT (SELECT count(*) FROM counted) <= {max_cells} AS fits,
    coalesce(json_agg(json_build_object(
        'type', 'Feature',
        'id', cq || ':' || cr,
        'geometry', ST_AsGeoJSON(hex, 5)::json,
        'properties', json_build_object('incidents', incidents, 'fatalities', fatalities,
                                        'q', cq, 'r', cr)
    ) ORDER BY incidents DESC, cq, cr), '[]')::text AS features,
    count(*) AS cells
FROM shaped
"""


def hexagon_area_m2(edge_m: float) -> float:
    return 3 * math.sqrt(3) / 2 * edge_m**2


async def grid(conn: asyncpg.Connection, f: SearchFilter, cell_km: float) -> tuple[str, int]:
    """The grid's features (a JSON array as text) and how many. The work is bounded by the
    hexagons that hold matching incidents (and by the bbox, radius or area when given), not
    by the area they could cover: `admin1=Diyala` with 10 km cells is a few hundred hexagons,
    whatever the world's size. More than MAX_CELLS non-empty hexagons is a 422."""
    sql, values = grid_query(f, cell_km * 1000)
    row = await conn.fetchrow(sql, *values)
    if not row["fits"]:
        raise Unprocessable(
            f"cell_km: {cell_km} km hexagons hold the matching incidents in more than "
            f"{MAX_CELLS:,} cells; use larger cells or narrow the filters",
            errors=[field_error("cell_km", "too many cells for these filters", cell_km)],
        )
    return str(row["features"]), int(row["cells"])


def grid_query(f: SearchFilter, edge_m: float, rollup: bool = True) -> tuple[str, list[Any]]:
    """The SQL and parameters of a hexagon grid (the benchmark's floor runs exactly this)."""
    p = Params()
    size = p.add(edge_m)
    counted = _rollup_counted(f, edge_m, size, p) if rollup else None
    if counted is not None:
        return _features(counted[0], counted[1], size), p.values
    cells = POINT_CELLS_SQL.format(size=size, source=source_sql(f, p), where=build_where(f, p).sql)
    counted_sql = (
        f"SELECT cq, cr, count(*) AS incidents, sum(fatalities) AS fatalities FROM ({cells}) c "
        "GROUP BY 1, 2"
    )
    return _features("", counted_sql, size), p.values


def _features(rect: str, counted: str, size: str) -> str:
    return FEATURES_SQL.format(rect=rect, counted=counted, size=size, max_cells=MAX_CELLS)


def rollup_applies(f: SearchFilter, edge_m: float) -> bool:
    """The grid rollup carries dates and one bbox, for its own hexagon sizes."""
    return (
        edge_m / 1000 in ROLLUP_EDGES_KM
        and GRID.serves(f)
        and len(f.envelopes) <= 1
        and all(_away_from_the_edges(e) for e in f.envelopes)
    )


def _away_from_the_edges(box: Envelope) -> bool:
    """A cut hexagon's incidents are found through its bounding box turned back into lon/lat,
    which wraps at ±180° and has no image past EPSG:6933's poles: near those (within one
    100 km hexagon), the grid is counted from the incidents directly."""
    return -178 <= box.min_lon and box.max_lon <= 178 and -80 <= box.min_lat and box.max_lat <= 80


def _rollup_counted(f: SearchFilter, edge_m: float, size: str, p: Params) -> tuple[str, str] | None:
    """(rect CTE, counted SQL) from the rollup, or None when it cannot answer exactly."""
    if not rollup_applies(f, edge_m):
        return None
    split = split_months(f.raw.start, f.raw.end)
    if split is None:
        return None
    lo, hi, edges = split
    box = f.envelopes[0] if f.envelopes else None
    months = [f"g.edge_km = {p.add(int(edge_m / 1000))}"]
    if lo is not None:
        months.append(f"g.month >= {p.add(lo)}")
    if hi is not None:
        months.append(f"g.month < {p.add(hi)}")
    rect_cte = ""
    parts = []
    if box is None:
        parts.append(
            "SELECT g.q AS cq, g.r AS cr, g.incidents, g.fatalities FROM incident_grid_cells g "
            f"WHERE {' AND '.join(months)}"
        )
    else:
        rect_cte = (
            "rect AS (SELECT ST_XMin(e) AS x0, ST_XMax(e) AS x1, ST_YMin(e) AS y0, "
            f"ST_YMax(e) AS y1 FROM (SELECT ST_Transform(ST_MakeEnvelope({p.add(box.min_lon)}, "
            f"{p.add(box.min_lat)}, {p.add(box.max_lon)}, {p.add(box.max_lat)}, 4326), 6933) "
            "AS e) b), "
        )
        dx, dy = p.add(1.5 * edge_m), p.add(math.sqrt(3) * edge_m)
        h = p.add(math.sqrt(3) / 2 * edge_m)

        def shape(template: str, q: str, r: str) -> str:
            return template.format(
                x=CENTRE_X.format(q=q, dx=dx),
                y=CENTRE_Y.format(q=q, r=r, dy=dy),
                s=size,
                h=h,
            )

        inside = shape(INSIDE_SQL, "g.q", "g.r")
        parts.append(
            "SELECT g.q AS cq, g.r AS cr, g.incidents, g.fatalities FROM incident_grid_cells g, "
            f"rect WHERE {' AND '.join(months)} AND {inside}"
        )
        # Hexagons the bbox's edge cuts: the rollup says which have incidents in these months;
        # each one's incidents inside the bbox are read through the index by its envelope.
        whole_months = f.between(lo, None if hi is None else hi - dt.timedelta(days=1))
        cells = POINT_CELLS_SQL.format(
            size=size,
            source=source_sql(f, p),
            where=f"i.geom && cut.envelope AND {build_where(whole_months, p).sql}",
        )
        cut = CUT_CELLS_SQL.format(
            x=CENTRE_X.format(q="q", dx=dx),
            y=CENTRE_Y.format(q="q", r="r", dy=dy),
            s=size,
            h=h,
            months=" AND ".join(months),
            inside=inside,
            touches=shape(TOUCHES_SQL, "g.q", "g.r"),
        )
        parts.append(
            f"SELECT c.cq, c.cr, 1 AS incidents, c.fatalities FROM ({cut}) cut "
            f"CROSS JOIN LATERAL ({cells}) c WHERE c.cq = cut.q AND c.cr = cut.r"
        )
    for edge_start, edge_end in edges:
        cells = POINT_CELLS_SQL.format(
            size=size,
            source=source_sql(f, p),
            where=build_where(f.between(edge_start, edge_end), p).sql,
        )
        parts.append(f"SELECT cq, cr, 1 AS incidents, fatalities FROM ({cells}) c")
    counted = (
        "SELECT cq, cr, sum(incidents) AS incidents, sum(fatalities) AS fatalities "
        f"FROM ({' UNION ALL '.join(parts)}) u GROUP BY cq, cr HAVING sum(incidents) > 0"
    )
    return rect_cte, counted
