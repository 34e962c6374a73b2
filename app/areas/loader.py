"""Loads country and admin-1 boundaries into `areas` (kinds `country`, `admin1`), idempotently,
and user GeoJSON files as named areas."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from app.areas.sources import Boundary, default_admin1_path, iter_admin1, iter_countries

STAGING_DDL = """
CREATE TEMP TABLE staging_areas (
    kind text, name text, code text, iso_a2 text, iso_a3 text, alt_names text[], wkb bytea
) ON COMMIT DROP
"""

# Source polygons can be invalid (Natural Earth's Egypt crosses itself): make them valid and
# keep only their polygonal part.
UPSERT_SQL = """
WITH src AS (
    SELECT kind, name, code, iso_a2, iso_a3, alt_names,
           ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_SetSRID(ST_GeomFromWKB(wkb), 4326)), 3))
           AS geom
    FROM staging_areas
), up AS (
    INSERT INTO areas AS a (kind, name, code, iso_a2, iso_a3, alt_names, geom, source, created_by)
    SELECT kind, name, code, iso_a2, iso_a3, alt_names, geom, 'naturalearth', 'loader' FROM src
    WHERE NOT ST_IsEmpty(geom)
    ON CONFLICT (kind, code) WHERE code IS NOT NULL DO UPDATE SET
        name = EXCLUDED.name, iso_a2 = EXCLUDED.iso_a2, iso_a3 = EXCLUDED.iso_a3,
        alt_names = EXCLUDED.alt_names, geom = EXCLUDED.geom
    WHERE (a.name, a.iso_a2, a.iso_a3, a.alt_names) IS DISTINCT FROM
          (EXCLUDED.name, EXCLUDED.iso_a2, EXCLUDED.iso_a3, EXCLUDED.alt_names)
       OR NOT ST_Equals(a.geom, EXCLUDED.geom)
    RETURNING a.id
)
INSERT INTO changed_areas SELECT id FROM up
"""

PARTS_SQL = """
INSERT INTO area_parts (area_id, geom)
SELECT a.id, ST_Subdivide(a.geom, 256) FROM areas a JOIN changed_areas c ON c.id = a.id
"""

# Country names from Natural Earth help `country=` match more spellings.
COUNTRY_NAMES_SQL = """
UPDATE countries c SET alt_names = a.alt_names || ARRAY[a.name]
FROM areas a WHERE a.kind = 'country' AND a.iso_a3 = c.iso_a3
  AND c.alt_names IS DISTINCT FROM a.alt_names || ARRAY[a.name]
"""


@dataclass
class BoundaryReport:
    countries: int
    admin1: int
    changed: int
    seconds: float


def _rows(boundaries: Iterable[Boundary]) -> list[tuple[Any, ...]]:
    rows = []
    seen: set[tuple[str, str]] = set()
    for b in boundaries:
        code = b.code or f"{b.iso_a3 or b.iso_a2 or 'XX'}:{b.name}"
        base, n = code, 1
        while (b.kind, code) in seen:  # the same name twice in one country
            n += 1
            code = f"{base}#{n}"
        seen.add((b.kind, code))
        rows.append((b.kind, b.name, code, b.iso_a2, b.iso_a3, list(b.alt_names), b.wkb))
    return rows


async def load_boundaries(
    conn: asyncpg.Connection, admin1_path: Path | None = None
) -> BoundaryReport:
    started = time.perf_counter()
    countries = _rows(iter_countries())
    path = admin1_path or default_admin1_path()
    admin1 = _rows(iter_admin1(path)) if path is not None else []
    async with conn.transaction():
        await conn.execute(STAGING_DDL)
        await conn.execute("CREATE TEMP TABLE changed_areas (id bigint) ON COMMIT DROP")
        await conn.copy_records_to_table(
            "staging_areas",
            records=countries + admin1,
            columns=["kind", "name", "code", "iso_a2", "iso_a3", "alt_names", "wkb"],
        )
        status = await conn.execute(UPSERT_SQL)
        changed = int(status.split()[-1])
        await conn.execute("DELETE FROM area_parts p USING changed_areas c WHERE p.area_id = c.id")
        await conn.execute(PARTS_SQL)
        await conn.execute(COUNTRY_NAMES_SQL)
    await conn.execute("ANALYZE areas")
    await conn.execute("ANALYZE area_parts")
    return BoundaryReport(
        countries=len(countries),
        admin1=len(admin1),
        changed=changed,
        seconds=time.perf_counter() - started,
    )


def read_geojson_areas(
    path: Path, name_field: str
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, geometry, properties) of every Polygon/MultiPolygon feature in a GeoJSON file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    features = data.get("features") if data.get("type") == "FeatureCollection" else [data]
    out = []
    for n, feature in enumerate(features or []):
        geometry = feature.get("geometry") or {}
        if geometry.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        properties = feature.get("properties") or {}
        name = properties.get(name_field) or feature.get("id") or f"{path.stem} {n + 1}"
        out.append((str(name), geometry, properties))
    return out


async def import_geojson(
    conn: asyncpg.Connection, path: Path, *, name_field: str = "name", created_by: str = "cli"
) -> tuple[int, int]:
    """Named areas from a GeoJSON file; an existing name is replaced. (created, replaced)"""
    from app.areas.service import create_area

    created = replaced = 0
    for name, geometry, properties in read_geojson_areas(path, name_field):
        async with conn.transaction():
            existing = await conn.fetchval(
                "DELETE FROM areas WHERE kind = 'custom' AND app_norm(name) = app_norm($1) "
                "RETURNING id",
                name,
            )
            await create_area(
                conn, name=name, geometry=geometry, properties=properties, created_by=created_by
            )
        if existing is None:
            created += 1
        else:
            replaced += 1
    return created, replaced
