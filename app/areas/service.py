"""Named polygons: user areas, and the country / admin-1 boundaries loaded from Natural Earth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from app.core.errors import Conflict, NotFound, Unprocessable, dumps, field_error
from app.core.geo import Envelope


@dataclass(frozen=True)
class AreaRef:
    """An area as a search filter (`within=`)."""

    id: int
    name: str
    kind: str
    # The polygon itself, bound as a parameter: with a custom plan it is a constant, so PostGIS
    # estimates the selectivity from its extent and caches its prepared form across rows.
    wkb: bytes


AREA_JSON = """json_build_object(
    'id', a.id::text, 'name', a.name, 'kind', a.kind, 'code', a.code,
    'iso_a2', a.iso_a2, 'iso_a3', a.iso_a3, 'alt_names', a.alt_names,
    'properties', a.properties, 'source', a.source,
    'bbox', json_build_array(ST_XMin(a.geom), ST_YMin(a.geom), ST_XMax(a.geom), ST_YMax(a.geom)),
    'created_at', a.created_at
)"""

LIST_SQL = (
    "SELECT a.id, (" + AREA_JSON + ")::text AS doc FROM areas a "  # noqa: S608 (constant SQL)
    "WHERE a.id > $1 AND ($2::text IS NULL OR a.kind = $2) "
    "AND ($3::text IS NULL OR app_norm(a.name) LIKE '%' || app_norm($3) || '%') "
    "ORDER BY a.id LIMIT $4"
)

GET_SQL = (
    "SELECT json_build_object('type', 'Feature', 'id', a.id::text, "
    "'geometry', ST_AsGeoJSON(a.geom, 6)::json, 'properties', " + AREA_JSON + ")::text "
    "FROM areas a WHERE a.id = $1"
)

CHECK_SQL = """
SELECT ST_IsValid(g) AS valid, ST_IsValidReason(g) AS reason, ST_GeometryType(g) AS type,
       ST_NPoints(g) AS points, ST_XMin(g) AS x0, ST_YMin(g) AS y0, ST_XMax(g) AS x1,
       ST_YMax(g) AS y1
FROM (SELECT ST_SetSRID(ST_GeomFromGeoJSON($1), 4326) AS g) s
"""

INSERT_SQL = """
WITH ins AS (
    INSERT INTO areas (name, kind, code, iso_a2, iso_a3, alt_names, properties, geom, source,
                       created_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON($8), 4326)),
            $9, $10)
    RETURNING id, geom
), parts AS (
    INSERT INTO area_parts (area_id, geom)
    SELECT ins.id, ST_Subdivide(ins.geom, 256) FROM ins
)
SELECT id FROM ins
"""

MAX_POINTS = 1_000_000


async def check_polygon(
    conn: asyncpg.Connection, geometry: dict[str, Any], field: str
) -> tuple[str, Envelope]:
    """The geometry as GeoJSON text, and its extent, if it is a valid (Multi)Polygon in
    lon/lat; else a 422."""
    text = dumps(geometry).decode()
    try:
        row = await conn.fetchrow(CHECK_SQL, text)
    except (asyncpg.PostgresError, ValueError) as exc:
        raise Unprocessable(
            f"{field}: not a GeoJSON geometry PostGIS can read",
            errors=[field_error(field, "unreadable GeoJSON geometry")],
        ) from exc
    if row["type"] is None or not row["points"] or row["x0"] is None:
        raise Unprocessable(
            f"{field}: empty geometry", errors=[field_error(field, "empty geometry")]
        )
    if row["type"] not in ("ST_Polygon", "ST_MultiPolygon"):
        raise Unprocessable(
            f"{field}: must be a Polygon or MultiPolygon",
            errors=[field_error(field, "must be a Polygon or MultiPolygon")],
        )
    if not row["valid"]:
        raise Unprocessable(
            f"{field}: invalid polygon ({row['reason']})",
            errors=[field_error(field, f"invalid polygon: {row['reason']}")],
        )
    if row["points"] > MAX_POINTS:
        raise Unprocessable(
            f"{field}: more than {MAX_POINTS} vertices",
            errors=[field_error(field, "too many vertices")],
        )
    if not (-180 <= row["x0"] <= row["x1"] <= 180 and -90 <= row["y0"] <= row["y1"] <= 90):
        raise Unprocessable(
            f"{field}: coordinates must be lon/lat degrees",
            errors=[field_error(field, "coordinates out of range")],
        )
    return text, Envelope(row["x0"], row["y0"], row["x1"], row["y1"])


async def create_area(
    conn: asyncpg.Connection,
    *,
    name: str,
    geometry: dict[str, Any],
    properties: dict[str, Any],
    created_by: str,
    kind: str = "custom",
    code: str | None = None,
) -> int:
    text, _ = await check_polygon(conn, geometry, "geometry")
    try:
        async with conn.transaction():  # a savepoint inside the request's transaction
            area_id = await conn.fetchval(
                INSERT_SQL,
                name,
                kind,
                code,
                None,
                None,
                [],
                dumps(properties).decode(),
                text,
                "user",
                created_by,
            )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(
            f"An area named '{name}' already exists.",
            errors=[field_error("name", "already exists", name)],
        ) from exc
    return int(area_id)


async def list_areas(
    conn: asyncpg.Connection, *, after_id: int, kind: str | None, name: str | None, limit: int
) -> tuple[list[str], dict[str, Any] | None]:
    """A page of areas and the next cursor's payload (None on the last page)."""
    rows = await conn.fetch(LIST_SQL, after_id, kind, name, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return [str(r["doc"]) for r in rows], ({"id": int(rows[-1]["id"])} if more else None)


async def get_area(conn: asyncpg.Connection, area_id: int) -> str:
    doc = await conn.fetchval(GET_SQL, area_id)
    if doc is None:
        raise NotFound(f"No area with id '{area_id}'.")
    return str(doc)


RESOLVE_SQL = """
SELECT id, name, kind, ST_AsBinary(geom) AS wkb
FROM areas
WHERE ($1::bigint IS NOT NULL AND id = $1)
   OR app_norm(name) = app_norm($2) OR upper(code) = upper($2)
   OR app_norm($2) = ANY (SELECT app_norm(x) FROM unnest(alt_names) x)
ORDER BY (id = $1) DESC NULLS LAST,
         CASE kind WHEN 'custom' THEN 0 WHEN 'admin1' THEN 1 ELSE 2 END, id
LIMIT 1
"""


async def resolve_area(conn: asyncpg.Connection, ref: str) -> AreaRef:
    """An area by id, name or code (user areas win over admin-1 over countries)."""
    area_id = int(ref) if ref.isdigit() and len(ref) < 19 else None
    row = await conn.fetchrow(RESOLVE_SQL, area_id, ref)
    if row is None:
        raise NotFound(
            f"Unknown area '{ref}'.", errors=[field_error("within", "unknown area", ref)]
        )
    return AreaRef(id=int(row["id"]), name=row["name"], kind=row["kind"], wkb=bytes(row["wkb"]))


LOCATE_SQL = """
SELECT a.kind, a.name, a.iso_a2, a.iso_a3
FROM area_parts p JOIN areas a ON a.id = p.area_id
WHERE a.kind IN ('country', 'admin1')
  AND p.geom && ST_SetSRID(ST_MakePoint($1, $2), 4326)
  AND ST_Intersects(p.geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))
"""


async def locate(conn: asyncpg.Connection, *, latitude: float, longitude: float) -> dict[str, Any]:
    """Country (name, alpha-3) and admin-1 name of a point, from the loaded boundaries."""
    out: dict[str, Any] = {}
    for row in await conn.fetch(LOCATE_SQL, longitude, latitude):
        if row["kind"] == "country" and "country" not in out:
            out["country"] = row["name"]
            out["country_code"] = row["iso_a3"]
        elif row["kind"] == "admin1" and "admin1" not in out:
            out["admin1"] = row["name"]
            out.setdefault("admin1_country_code", row["iso_a3"])
    return out


OUTLINES_SQL = """
SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(
    json_build_object('type', 'Feature', 'id', a.id::text,
                      'properties', json_build_object('name', a.name, 'code', a.code),
                      'geometry', ST_AsGeoJSON(ST_SimplifyPreserveTopology(a.geom, $2), 4)::json)
), '[]'))::text
FROM areas a WHERE a.kind = $1
"""


async def outlines(conn: asyncpg.Connection, *, kind: str, tolerance: float) -> str:
    return str(await conn.fetchval(OUTLINES_SQL, kind, tolerance))
